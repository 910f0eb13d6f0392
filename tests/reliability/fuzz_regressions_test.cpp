// Inputs the fuzz targets found (fuzz/regressions/), replayed through the product's loaders: each
// is an llm::Error naming the file, not another exception escaping.
#include <gtest/gtest.h>

#include "io/io_test_util.h"
#include "llm/error.h"
#include "llm/manifest.h"

namespace llm::test {

TEST(FuzzRegressions, ManifestWithANumberBeyondADoubleIsAnErrorNamingTheFile) {
  TempDir dir;
  // shard_fuzz, fuzz/regressions/shard/manifest_number_overflow: nlohmann::json's out_of_range
  // (error 406) escaped read_manifest, which caught only parse errors.
  write_bytes(dir / "manifest.json", "{\"config\": {\"data\": {\"batch_bytes\": 4193333333333333E33333333333333333}}}");
  try {
    (void)read_manifest(dir.path());
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("manifest.json: "), std::string::npos) << e.what();
  }
}

}  // namespace llm::test
