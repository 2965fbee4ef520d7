#include "kernel/base/config.hpp"

#include <catch2/catch.hpp>
#include <cstring>
#include <string>

using namespace microhv;

namespace {
bool parse(const std::string& text, Config* c, std::string* err = nullptr) {
  char error[128] = {};
  bool ok = parse_config(text.data(), text.size(), c, error, sizeof(error));
  if (err != nullptr) *err = error;
  return ok;
}
}  // namespace

TEST_CASE("Config: image, options and testdev with comments, blanks and CRLF") {
  Config c;
  REQUIRE(
      parse("# microhv\r\n\r\n image = \\EFI\\microhv\\guest.efi  # next\r\n"
            "options=console=ttyS0 initrd=\\initrd.img\r\ntestdev = on\r\n",
            &c));
  CHECK(std::string(c.image) == "\\EFI\\microhv\\guest.efi");
  CHECK(std::string(c.options) == "console=ttyS0 initrd=\\initrd.img");
  CHECK(c.testdev);
}

TEST_CASE("Config: an empty file means no next stage and testdev off") {
  Config c;
  REQUIRE(parse("", &c));
  CHECK(c.image[0] == '\0');
  CHECK_FALSE(c.testdev);
}

TEST_CASE("Config: malformed lines, unknown keys and overlong values are refused with the line") {
  Config c;
  std::string err;
  CHECK_FALSE(parse("image = a\nbogus\n", &c, &err));
  CHECK(err == "line 2: expected `key = value`");
  CHECK_FALSE(parse("colour = red\n", &c, &err));
  CHECK(err.find("unknown key") != std::string::npos);
  CHECK_FALSE(parse("testdev = maybe\n", &c, &err));
  CHECK_FALSE(parse("image = " + std::string(300, 'x') + "\n", &c, &err));
  CHECK(err == "line 1: value too long");
  CHECK(parse("image = " + std::string(255, 'x') + "\n", &c, &err));
}

TEST_CASE("Config: iommu = required | if-present | off, default if-present (issue 14)") {
  Config c;
  REQUIRE(parse("", &c));
  CHECK(c.iommu == IommuPolicy::kIfPresent);
  REQUIRE(parse("iommu = required\n", &c));
  CHECK(c.iommu == IommuPolicy::kRequired);
  REQUIRE(parse("iommu=off # leave VT-d to the guest\n", &c));
  CHECK(c.iommu == IommuPolicy::kOff);
  REQUIRE(parse("iommu = if-present\r\n", &c));
  CHECK(c.iommu == IommuPolicy::kIfPresent);
  std::string err;
  for (const char* bad : {"iommu = on", "iommu = Required", "iommu =", "iommu = off off"}) {
    INFO(bad);
    CHECK_FALSE(parse(std::string("image = x\n") + bad + "\n", &c, &err));
    CHECK(err == "line 2: iommu must be required, if-present or off");
    CHECK(c.iommu == IommuPolicy::kIfPresent);  // the refused value is not taken
  }
}

TEST_CASE("Config: vtd-selftest = on | off, default off") {
  Config c;
  REQUIRE(parse("", &c));
  CHECK_FALSE(c.vtd_selftest);
  REQUIRE(parse("vtd-selftest = on\n", &c));
  CHECK(c.vtd_selftest);
  CHECK_FALSE(c.testdev);
  REQUIRE(parse("vtd-selftest = off\n", &c));
  CHECK_FALSE(c.vtd_selftest);
  std::string err;
  CHECK_FALSE(parse("vtd-selftest = yes\n", &c, &err));
  CHECK(err == "line 1: vtd-selftest must be on or off");
  CHECK_FALSE(parse("vtd_selftest = on\n", &c, &err));
  CHECK(err == "line 1: unknown key (known: image, options, testdev, iommu, vtd-selftest)");
}

// Found by the config fuzzer: "off" after "on" was ignored.
TEST_CASE("Config: the last line that sets a key wins, testdev = off included") {
  Config c;
  std::string err;
  REQUIRE(parse("testdev = on\ntestdev = off\n", &c, &err));
  CHECK_FALSE(c.testdev);
  REQUIRE(parse("image = a\nimage = b\ntestdev = off\ntestdev = on\n", &c, &err));
  CHECK(std::string(c.image) == "b");
  CHECK(c.testdev);
}
