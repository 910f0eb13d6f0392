// Every malformed-file path of SafetensorsReader, each on a crafted file: one llm::Error whose
// message names the file and the problem.
#include <filesystem>
#include <string>
#include <vector>

#include "io_test_util.h"
#include "llm/safetensors.h"
#include "test_util.h"

namespace llm {
namespace {

namespace fs = std::filesystem;
using test::le_u64;
using test::safetensors_bytes;
using test::TempDir;

// Writes raw bytes to a file and expects opening it to fail with a message holding the path and
// every one of parts.
void expect_bad_file(const std::string& bytes, std::vector<std::string> parts) {
  TempDir dir;
  const fs::path path = dir / "bad.safetensors";
  test::write_bytes(path, bytes);
  parts.push_back(path.string());
  test::expect_error([&] { SafetensorsReader r(path); }, parts);
}

// A file whose one tensor "w" has the given entry text and `data_bytes` bytes of data.
std::string one_tensor(const std::string& entry, size_t data_bytes) {
  return safetensors_bytes("{\"w\":" + entry + "}", std::string(data_bytes, '\x01'));
}

TEST(SafetensorsValidation, FileShorterThan8Bytes) {
  expect_bad_file("", {"file is 0 bytes", "too short"});
  expect_bad_file("abcdefg", {"file is 7 bytes", "too short"});
}

TEST(SafetensorsValidation, MissingFileAndDirectory) {
  TempDir dir;
  test::expect_error([&] { SafetensorsReader r(dir / "none.safetensors"); },
                     {(dir / "none.safetensors").string(), "cannot open", "No such file or directory"});
  test::expect_error([&] { SafetensorsReader r(dir.path()); }, {dir.path().string(), "not a regular file"});
}

TEST(SafetensorsValidation, HeaderLengthPastEndOfFile) {
  expect_bad_file(le_u64(100) + "{}", {"header length 100", "file bytes 0..8", "past the end", "(10 bytes)"});
}

TEST(SafetensorsValidation, HeaderLengthOver100MB) {
  expect_bad_file(le_u64(100'000'001) + "{}", {"header length 100000001", "100 MB"});
  expect_bad_file(le_u64(~uint64_t{0}) + "{}", {"100 MB"});
}

TEST(SafetensorsValidation, HeaderNotUtf8) {
  expect_bad_file(safetensors_bytes("{\"w\xff\":{}}"), {"not valid UTF-8 JSON", "UTF-8"});
}

TEST(SafetensorsValidation, HeaderNotJson) {
  // The bad token 'x' is header byte 5, file byte 13.
  expect_bad_file(safetensors_bytes("{\"a\":x}"), {"not valid UTF-8 JSON", "near file byte 13"});
  expect_bad_file(safetensors_bytes("{\"a\":{}"), {"not valid UTF-8 JSON"});
  expect_bad_file(safetensors_bytes(std::string_view("{}\0\0", 4)),
                  {"not valid UTF-8 JSON", "NUL byte at file byte 10"});  // NUL padding
  expect_bad_file(safetensors_bytes(std::string_view("{}\0junk", 7)), {"NUL byte at file byte 10"});
}

TEST(SafetensorsValidation, HeaderNotAnObject) {
  expect_bad_file(safetensors_bytes("[1, 2]"), {"header: expected a JSON object", "array"});
  expect_bad_file(safetensors_bytes("\"w\""), {"header: expected a JSON object", "string"});
}

TEST(SafetensorsValidation, DuplicateKey) {
  const std::string e = R"({"dtype":"U8","shape":[1],"data_offsets":[0,1]})";
  expect_bad_file(safetensors_bytes("{\"w\":" + e + ",\"w\":" + e + "}", "\x01"), {"key \"w\" appears twice"});
}

TEST(SafetensorsValidation, EntryNotAnObject) {
  expect_bad_file(one_tensor("5", 0), {"tensor \"w\"", "expected an object with dtype, shape, data_offsets"});
  expect_bad_file(one_tensor("[]", 0), {"tensor \"w\"", "expected an object"});
}

TEST(SafetensorsValidation, EntryMissingAField) {
  expect_bad_file(one_tensor(R"({"shape":[1],"data_offsets":[0,1]})", 1), {"tensor \"w\"", "missing \"dtype\""});
  expect_bad_file(one_tensor(R"({"dtype":"U8","data_offsets":[0,1]})", 1), {"tensor \"w\"", "missing \"shape\""});
  expect_bad_file(one_tensor(R"({"dtype":"U8","shape":[1]})", 1), {"tensor \"w\"", "missing \"data_offsets\""});
}

TEST(SafetensorsValidation, EntryWithUnexpectedKey) {
  expect_bad_file(one_tensor(R"({"dtype":"U8","shape":[1],"data_offsets":[0,1],"offsets":[0,1]})", 1),
                  {"tensor \"w\"", "unexpected key \"offsets\""});
}

TEST(SafetensorsValidation, UnknownDtype) {
  expect_bad_file(one_tensor(R"({"dtype":"F128","shape":[1],"data_offsets":[0,16]})", 16),
                  {"tensor \"w\"", "unknown dtype \"F128\"", "accepted: BOOL U8"});
  expect_bad_file(one_tensor(R"({"dtype":"f32","shape":[1],"data_offsets":[0,4]})", 4),
                  {"tensor \"w\"", "unknown dtype \"f32\""});
  expect_bad_file(one_tensor(R"({"dtype":4,"shape":[1],"data_offsets":[0,4]})", 4),
                  {"tensor \"w\"", "dtype: expected a string"});
}

TEST(SafetensorsValidation, NegativeShapeEntry) {
  expect_bad_file(one_tensor(R"({"dtype":"U8","shape":[2,-1],"data_offsets":[0,0]})", 0),
                  {"tensor \"w\"", "expected non-negative integers, got -1"});
}

TEST(SafetensorsValidation, NonIntegerShapeEntry) {
  expect_bad_file(one_tensor(R"({"dtype":"U8","shape":[2.0],"data_offsets":[0,2]})", 2),
                  {"tensor \"w\"", "expected non-negative integers, got 2.0"});
  expect_bad_file(one_tensor(R"({"dtype":"U8","shape":["2"],"data_offsets":[0,2]})", 2),
                  {"tensor \"w\"", "expected non-negative integers, got \"2\""});
  expect_bad_file(one_tensor(R"({"dtype":"U8","shape":2,"data_offsets":[0,2]})", 2),
                  {"tensor \"w\"", "shape: expected an array"});
  expect_bad_file(one_tensor(R"({"dtype":"U8","shape":[18446744073709551615],"data_offsets":[0,2]})", 2),
                  {"tensor \"w\"", "expected non-negative integers"});
}

// Found by hand next to fuzz/safetensors_fuzz.cpp (fuzz/regressions/safetensors/shape_beyond_double):
// nlohmann throws out_of_range, not parse_error, on such a number, and it escaped the reader.
TEST(SafetensorsValidation, NumberBeyondDouble) {
  expect_bad_file(one_tensor(R"({"dtype":"U8","shape":[1e400],"data_offsets":[0,2]})", 2),
                  {"header (file bytes 8..", "number overflow", "1e400"});
}

TEST(SafetensorsValidation, ShapeOverflowsByteCount) {
  expect_bad_file(one_tensor(R"({"dtype":"F32","shape":[4611686018427387904,2],"data_offsets":[0,0]})", 0),
                  {"tensor \"w\"", "overflows"});
}

TEST(SafetensorsValidation, DataOffsetsNotTwoNonNegativeIntegers) {
  const std::vector<std::string> bad = {"[0]", "[0,4,8]", "[-4,0]", "[0.0,4]", "\"0,4\"", "[0,null]"};
  for (const std::string& offs : bad) {
    SCOPED_TRACE(offs);
    expect_bad_file(one_tensor(R"({"dtype":"F32","shape":[1],"data_offsets":)" + offs + "}", 4),
                    {"tensor \"w\"", "data_offsets: expected [begin, end], two non-negative integers"});
  }
}

TEST(SafetensorsValidation, DataOffsetsDecreasing) {
  expect_bad_file(one_tensor(R"({"dtype":"U8","shape":[0],"data_offsets":[4,0]})", 4),
                  {"tensor \"w\"", "data_offsets [4, 0]", "end is before begin"});
}

TEST(SafetensorsValidation, SizeDisagreesWithShapeAndDtype) {
  expect_bad_file(one_tensor(R"({"dtype":"F32","shape":[3],"data_offsets":[0,8]})", 8),
                  {"tensor \"w\"", "data_offsets [0, 8] hold 8 bytes", "F32 [3] needs 12"});
  expect_bad_file(one_tensor(R"({"dtype":"BF16","shape":[],"data_offsets":[0,4]})", 4),
                  {"tensor \"w\"", "hold 4 bytes", "BF16 [] needs 2"});
}

TEST(SafetensorsValidation, RangePastEndOfFile) {
  const std::string header = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  const uint64_t start = 8 + header.size();
  expect_bad_file(safetensors_bytes(header, "abcd"),
                  {"tensor \"w\"", "run past the end of the file", cat("file bytes ", start, "..", start + 8),
                   cat("(", start + 4, " bytes)")});
}

TEST(SafetensorsValidation, OverlappingTensors) {
  expect_bad_file(safetensors_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                    R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                                    std::string(12, '\0')),
                  {"tensor \"b\"", "overlaps tensor \"a\""});
  // An empty tensor inside another one overlaps it too.
  expect_bad_file(safetensors_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                    R"("z":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}})",
                                    std::string(8, '\0')),
                  {"tensor \"z\"", "overlaps tensor \"a\""});
}

TEST(SafetensorsValidation, GapBetweenTensors) {
  const std::string header = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                             R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})";
  expect_bad_file(safetensors_bytes(header, std::string(12, '\0')),
                  {"gap of 4 bytes", cat("at file byte ", 8 + header.size() + 4), "before tensor \"b\""});
  const std::string late = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})";
  expect_bad_file(safetensors_bytes(late, std::string(8, '\0')), {"gap of 4 bytes", "before tensor \"a\""});
}

TEST(SafetensorsValidation, BytesAfterLastTensor) {
  const std::string header = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  expect_bad_file(safetensors_bytes(header, std::string(7, '\0')),
                  {"3 bytes after the last tensor", cat("at file byte ", 8 + header.size() + 4)});
  expect_bad_file(safetensors_bytes("{}", "x"), {"1 bytes after the last tensor"});
}

TEST(SafetensorsValidation, MetadataNotAnObjectOfStrings) {
  expect_bad_file(safetensors_bytes(R"({"__metadata__":["a"]})"), {"__metadata__", "expected an object of strings"});
  expect_bad_file(safetensors_bytes(R"({"__metadata__":"a"})"), {"__metadata__", "expected an object of strings"});
  expect_bad_file(safetensors_bytes(R"({"__metadata__":{"k":1}})"),
                  {"__metadata__ \"k\"", "expected a string, got number"});
  expect_bad_file(safetensors_bytes(R"({"__metadata__":{"k":{"x":"y"}}})"),
                  {"__metadata__ \"k\"", "expected a string, got object"});
}

}  // namespace
}  // namespace llm
