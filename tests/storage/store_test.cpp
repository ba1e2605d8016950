#include <catch2/catch.hpp>

#include <fstream>

#include "cohort/storage/store.hpp"
#include "temp_dir.hpp"

using namespace cohort;

TEST_CASE("a store keeps what was written across close and reopen", "[storage]") {
  test::temp_dir dir;
  {
    auto s = store::open(dir / "svc");
    REQUIRE(s.ok());
    write_batch b;
    b.put("a", "1");
    b.put("b", "2");
    REQUIRE((*s)->write(b).ok());
    write_batch d;
    d.erase("a");
    REQUIRE((*s)->write(d).ok());
  }
  auto s = store::open(dir / "svc");
  REQUIRE(s.ok());
  CHECK_FALSE((*s)->get("a")->has_value());
  CHECK((*s)->get("b")->value() == "2");
}

TEST_CASE("a store locked by another opener fails with a message naming the directory", "[storage]") {
  test::temp_dir dir;
  auto first = store::open(dir / "svc");
  REQUIRE(first.ok());
  auto second = store::open(dir / "svc");
  REQUIRE_FALSE(second.ok());
  CHECK(second.error().is(errc::unavailable));
  CHECK_THAT(second.error().message, Catch::Contains(dir / "svc") && Catch::Contains("lock"));
}

TEST_CASE("a corrupt store fails to open with a clear message", "[storage]") {
  test::temp_dir dir;
  { REQUIRE(store::open(dir / "svc").ok()); }
  for (const auto& e : std::filesystem::directory_iterator(dir / "svc"))
    if (e.path().filename().string().rfind("MANIFEST", 0) == 0) std::ofstream(e.path(), std::ios::trunc) << "garbage";
  auto s = store::open(dir / "svc");
  REQUIRE_FALSE(s.ok());
  CHECK_THAT(s.error().message, Catch::Contains(dir / "svc"));
}
