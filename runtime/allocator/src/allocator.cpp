#include "cohort/allocator/allocator.hpp"

#include <dlfcn.h>
#include <malloc.h>

#include <cstdint>

namespace cohort::allocator {
namespace {

/// jemalloc's control interface, looked up rather than linked: the same code
/// then reports glibc's figures in a program that does not link jemalloc.
using mallctl_fn = int (*)(const char*, void*, std::size_t*, void*, std::size_t);

mallctl_fn jemalloc_ctl() {
  static const auto fn = reinterpret_cast<mallctl_fn>(::dlsym(RTLD_DEFAULT, "mallctl"));
  return fn;
}

}  // namespace

std::string name() {
  if (auto ctl = jemalloc_ctl()) {
    const char* version = nullptr;
    std::size_t size = sizeof version;
    if (ctl("version", &version, &size, nullptr, 0) == 0 && version) return std::string("jemalloc ") + version;
    return "jemalloc";
  }
  return "glibc";
}

std::size_t bytes_in_use() {
  if (auto ctl = jemalloc_ctl()) {
    // jemalloc's statistics are a snapshot taken when the epoch advances.
    std::uint64_t epoch = 1;
    std::size_t size = sizeof epoch;
    ctl("epoch", &epoch, &size, &epoch, size);
    std::size_t allocated = 0;
    size = sizeof allocated;
    if (ctl("stats.allocated", &allocated, &size, nullptr, 0) == 0) return allocated;
  }
  const auto m = ::mallinfo2();
  return m.uordblks + m.hblkhd;
}

}  // namespace cohort::allocator
