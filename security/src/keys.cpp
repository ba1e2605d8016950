#include "cohort/security/keys.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <toml++/toml.h>
#include <zmq.h>

namespace cohort::security {

namespace fs = std::filesystem;

key_pair generate_key_pair() {
  std::array<char, 41> pub{}, sec{};
  if (zmq_curve_keypair(pub.data(), sec.data()) != 0)
    throw std::runtime_error("zmq_curve_keypair failed: libzmq was built without CURVE");
  return {std::string(pub.data(), 40), std::string(sec.data(), 40)};
}

bool is_curve_key(std::string_view z85) {
  if (z85.size() != 40) return false;
  std::string text(z85);
  std::array<std::uint8_t, 32> raw{};
  return zmq_z85_decode(raw.data(), text.c_str()) != nullptr;
}

namespace {

result<toml::table> parse_key_file(const std::string& path) {
  try {
    return toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    return error_info{errc::bad_request, path + ": not a key file: " + std::string(e.description())};
  }
}

result<std::string> key_field(const toml::table& t, const char* field, const std::string& path) {
  auto v = t[field].value<std::string>();
  if (!v) return error_info{errc::bad_request, path + ": no '" + field + "' key"};
  if (!is_curve_key(*v)) return error_info{errc::bad_request, path + ": '" + field + "' is not a 40-character Z85 CURVE key"};
  return *v;
}

std::optional<error_info> write_file(const std::string& path, const std::string& text, mode_t mode) {
  // Created with its final mode: the secret is never readable by others, not even for a moment.
  auto tmp = path + ".tmp";
  std::FILE* f = nullptr;
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd >= 0) f = ::fdopen(fd, "w");
  if (!f) return error_info{errc::unavailable, "cannot write " + tmp + ": " + std::strerror(errno)};
  bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size() && std::fflush(f) == 0 && ::fsync(fd) == 0;
  std::fclose(f);
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0)
    return error_info{errc::unavailable, "cannot write " + path + ": " + std::strerror(errno)};
  return std::nullopt;
}

}  // namespace

result<std::string> write_key_pair(const std::string& path, const key_pair& pair, const std::string& name) {
  std::error_code ec;
  if (fs::exists(path, ec)) return error_info{errc::bad_request, path + " exists already; not overwriting a key"};
  auto dir = fs::path(path).parent_path();
  if (!dir.empty() && !fs::exists(dir, ec)) {
    fs::create_directories(dir, ec);
    if (ec) return error_info{errc::unavailable, "cannot create " + dir.string() + ": " + ec.message()};
    fs::permissions(dir, fs::perms::owner_all, ec);
  }
  const std::string head = "# Cohort CURVE key \"" + name + "\" (docs/security.md).\n";
  if (auto err = write_file(path + ".pub", head + "public = \"" + pair.public_key + "\"\n", 0644)) return *err;
  if (auto err = write_file(path, head + "# Secret: keep this file private (mode 0600).\npublic = \"" + pair.public_key +
                                      "\"\nsecret = \"" + pair.secret_key + "\"\n",
                            0600))
    return *err;
  return path;
}

result<key_pair> read_key_pair(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    return error_info{errc::bad_request, "cannot read key file " + path + ": " + std::strerror(errno)};
  if (st.st_mode & (S_IRWXG | S_IRWXO))
    return error_info{errc::bad_request, "key file " + path + " is readable by others (mode " +
                                             [&] { char b[8]; std::snprintf(b, sizeof b, "%03o", st.st_mode & 0777); return std::string(b); }() +
                                             "); chmod 600 it"};
  auto t = parse_key_file(path);
  if (!t) return t.error();
  auto pub = key_field(*t, "public", path);
  if (!pub) return pub.error();
  auto sec = key_field(*t, "secret", path);
  if (!sec) return sec.error();
  std::array<char, 41> derived{};
  if (zmq_curve_public(derived.data(), sec->c_str()) != 0 || std::string(derived.data(), 40) != *pub)
    return error_info{errc::bad_request, path + ": the public key does not belong to the secret key"};
  return key_pair{*pub, *sec};
}

result<std::string> read_public_key(const std::string& path) {
  auto t = parse_key_file(path);
  if (!t) return t.error();
  return key_field(*t, "public", path);
}

result<key_pair> load_or_create_key_pair(const std::string& path, const std::string& name) {
  std::error_code ec;
  if (fs::exists(path, ec)) return read_key_pair(path);
  auto written = write_key_pair(path, generate_key_pair(), name);
  // Another process of this node (a service's child) may have made it first.
  if (!written && !fs::exists(path, ec)) return written.error();
  return read_key_pair(path);
}

}  // namespace cohort::security
