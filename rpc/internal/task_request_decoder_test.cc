#include "rpc/internal/task_request_decoder.h"

#include <google/protobuf/util/message_differencer.h>
#include <grpc/grpc.h>
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace crunch::rpc::internal {
namespace {

using crunch::v1::TaskRequest;
using google::protobuf::util::MessageDifferencer;

class GrpcEnvironment : public ::testing::Environment {
 public:
  void SetUp() override { grpc_init(); }
  void TearDown() override { grpc_shutdown(); }
};
const auto* const kEnvironment = ::testing::AddGlobalTestEnvironment(new GrpcEnvironment);

// `bytes` as gRPC might deliver them: slices of `slice_size` bytes (the last
// one shorter), with an empty slice between each two.
grpc::ByteBuffer Sliced(const std::string& bytes, size_t slice_size) {
  std::vector<grpc::Slice> slices;
  for (size_t at = 0; at < bytes.size(); at += slice_size) {
    slices.emplace_back(bytes.data() + at, std::min(slice_size, bytes.size() - at));
    slices.emplace_back();
  }
  return grpc::ByteBuffer(slices.data(), slices.size());
}

// Field helpers for hand-made wire format.
std::string Varint(uint64_t v) {
  std::string out;
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
  return out;
}
std::string LengthDelimited(int field, const std::string& value) {
  return absl::StrCat(Varint(static_cast<uint64_t>(field) << 3 | 2), Varint(value.size()), value);
}

// Decodes with no limits, checking that nothing was left out.
bool Decode(const grpc::ByteBuffer& buffer, TaskRequest* out, DecodePath* path = nullptr) {
  DecodedTask decoded;
  const bool ok = DecodeTaskRequest(buffer, daemon::RequestLimits{}, &decoded, path);
  EXPECT_EQ(decoded.left_out.payload_bytes, 0u);
  EXPECT_TRUE(decoded.left_out.params.ok()) << decoded.left_out.params;
  *out = std::move(decoded.request);
  return ok;
}

daemon::RequestLimits Limits(uint64_t max_payload_bytes, uint64_t max_params = UINT64_MAX,
                             uint64_t max_param_bytes = UINT64_MAX) {
  return daemon::RequestLimits{.max_payload_bytes = max_payload_bytes,
                               .max_params = max_params,
                               .max_param_bytes = max_param_bytes};
}

// A message over kParseWholeMaxBytes (64 KiB), which the decoder takes apart
// rather than hand to protobuf whole: tests run both ways.
constexpr size_t kTakenApart = 70000;

TaskRequest Full(size_t payload_bytes) {
  TaskRequest r;
  r.set_kind("sha256");
  std::string payload(payload_bytes, '\0');
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(i * 131 + i / 7);
  r.set_payload(payload);
  (*r.mutable_params())["n"] = "30";
  (*r.mutable_params())["url"] = "http://localhost/";
  r.set_tag(0xfedcba9876543210ULL);
  r.set_timeout_ms(1234);
  r.set_priority(-7);
  r.set_idempotency_key("key-1");
  return r;
}

// The decoder must agree with protobuf's own parser on every input: the same
// verdict, and the same message when both accept it.
// With `valid_means_scanned`, a message protobuf accepts must also have been
// decoded by the scan (true of any message without groups).
void ExpectSameAsProtobuf(const std::string& bytes, size_t slice_size,
                          bool valid_means_scanned = false) {
  SCOPED_TRACE(absl::StrCat(bytes.size(), " bytes in slices of ", slice_size));
  TaskRequest expected;
  const bool expected_ok = expected.ParseFromString(bytes);
  TaskRequest decoded;
  decoded.set_kind("left over from before");
  DecodePath path = DecodePath::kWholeToProtobuf;
  const bool ok = Decode(Sliced(bytes, slice_size), &decoded, &path);
  ASSERT_EQ(ok, expected_ok);
  if (ok && valid_means_scanned) {
    EXPECT_EQ(path, DecodePath::kScanned);
  }
  if (ok) {
    EXPECT_TRUE(MessageDifferencer::Equals(decoded, expected))
        << "decoded: " << decoded.ShortDebugString().substr(0, 500)
        << "\nexpected: " << expected.ShortDebugString().substr(0, 500);
  }
}

// Decodes `bytes` and checks that the scan did it, not the fallback (which
// would give the right answer too, slowly: a scan that gave up on valid input
// would go unnoticed otherwise).
bool DecodeScanned(const std::string& bytes, size_t slice_size, TaskRequest* out) {
  DecodePath path = DecodePath::kWholeToProtobuf;
  const bool ok = Decode(Sliced(bytes, slice_size), out, &path);
  EXPECT_EQ(path, DecodePath::kScanned) << absl::CEscape(bytes.substr(0, 100));
  return ok;
}

TEST(DecodeTaskRequest, DecodesEveryFieldWhateverTheSlicing) {
  for (size_t payload : {size_t{5000}, kTakenApart}) {
    const TaskRequest request = Full(payload);
    const std::string bytes = request.SerializeAsString();
    for (size_t slice_size : {size_t{1}, size_t{2}, size_t{7}, size_t{4096}, bytes.size()}) {
      TaskRequest decoded;
      ASSERT_TRUE(DecodeScanned(bytes, slice_size, &decoded)) << slice_size;
      EXPECT_TRUE(MessageDifferencer::Equals(decoded, request)) << payload << " " << slice_size;
    }
  }
}

TEST(DecodeTaskRequest, ALargePayloadSplitAcrossManySlicesArrivesIntact) {
  // Over kLargePayloadBytes, so its string is advised and pre-faulted.
  const TaskRequest request = Full(kLargePayloadBytes + 12345);
  const std::string bytes = request.SerializeAsString();
  TaskRequest decoded;
  ASSERT_TRUE(DecodeScanned(bytes, 16 * 1024 + 3, &decoded));
  EXPECT_EQ(decoded.payload().size(), request.payload().size());
  EXPECT_TRUE(decoded.payload() == request.payload());
  EXPECT_EQ(decoded.kind(), "sha256");
  EXPECT_EQ(decoded.tag(), request.tag());
}

TEST(DecodeTaskRequest, AnEmptyMessageIsAllDefaults) {
  TaskRequest decoded;
  decoded.set_payload("stale");
  ASSERT_TRUE(DecodeScanned("", 1, &decoded));
  EXPECT_TRUE(MessageDifferencer::Equals(decoded, TaskRequest()));
}

TEST(DecodeTaskRequest, TheLastPayloadWins) {
  const std::string bytes =
      absl::StrCat(LengthDelimited(2, "first payload"), LengthDelimited(1, "sha256"),
                   LengthDelimited(2, "second"), LengthDelimited(7, "key"));
  TaskRequest decoded;
  ASSERT_TRUE(DecodeScanned(bytes, 3, &decoded));
  EXPECT_EQ(decoded.payload(), "second");
  EXPECT_EQ(decoded.kind(), "sha256");
  EXPECT_EQ(decoded.idempotency_key(), "key");
  ExpectSameAsProtobuf(bytes, 3);
  // Repeated scalars other than the payload are left to protobuf: last wins too.
  ExpectSameAsProtobuf(absl::StrCat(LengthDelimited(1, "a"), LengthDelimited(1, "b")), 1);
}

TEST(DecodeTaskRequest, APayloadOverTheLimitIsNotCopiedButMeasured) {
  for (size_t size : {size_t{5000}, kTakenApart}) {
    const TaskRequest request = Full(size);
    const std::string bytes = request.SerializeAsString();
    for (size_t slice_size : {size_t{3}, bytes.size()}) {
      DecodedTask decoded;
      DecodePath path = DecodePath::kWholeToProtobuf;
      ASSERT_TRUE(DecodeTaskRequest(Sliced(bytes, slice_size), Limits(size - 1), &decoded, &path));
      EXPECT_EQ(path, DecodePath::kScanned);
      EXPECT_EQ(decoded.left_out.payload_bytes, size);
      EXPECT_EQ(decoded.left_out.payload_limit, size - 1);
      EXPECT_TRUE(decoded.request.payload().empty());
      // Everything else is there.
      TaskRequest expected = request;
      expected.clear_payload();
      EXPECT_TRUE(MessageDifferencer::Equals(decoded.request, expected));
    }
    // At the limit exactly, it is copied.
    DecodedTask decoded;
    ASSERT_TRUE(DecodeTaskRequest(Sliced(bytes, 7), Limits(size), &decoded));
    EXPECT_EQ(decoded.left_out.payload_bytes, 0u);
    EXPECT_EQ(decoded.request.payload(), request.payload());
  }
}

TEST(DecodeTaskRequest, OnlyTheLastPayloadCountsAgainstTheLimit) {
  const std::string big(100, 'x');
  DecodedTask decoded;
  ASSERT_TRUE(DecodeTaskRequest(
      Sliced(absl::StrCat(LengthDelimited(2, big), LengthDelimited(2, "small")), 5), Limits(10),
      &decoded));
  EXPECT_EQ(decoded.left_out.payload_bytes, 0u);
  EXPECT_EQ(decoded.request.payload(), "small");
  ASSERT_TRUE(DecodeTaskRequest(
      Sliced(absl::StrCat(LengthDelimited(2, "small"), LengthDelimited(2, big)), 5), Limits(10),
      &decoded));
  EXPECT_EQ(decoded.left_out.payload_bytes, 100u);
  EXPECT_TRUE(decoded.request.payload().empty());
}

// `count` params entries, "p0".."pN" = "v", after a kind and a payload.
std::string WithParams(size_t count, size_t payload_bytes = 10) {
  std::string bytes =
      absl::StrCat(LengthDelimited(1, "fib"), LengthDelimited(2, std::string(payload_bytes, 'x')),
                   Varint(4 << 3 | 0), Varint(77));
  for (size_t i = 0; i < count; ++i) {
    absl::StrAppend(&bytes,
                    LengthDelimited(3, absl::StrCat(LengthDelimited(1, absl::StrCat("p", i)),
                                                    LengthDelimited(2, "v"))));
  }
  return bytes;
}

TEST(DecodeTaskRequest, TooManyParamsAreCountedNotParsed) {
  for (size_t payload : {size_t{10}, kTakenApart}) {
    SCOPED_TRACE(payload);
    const std::string bytes = WithParams(100000, payload);
    DecodedTask decoded;
    DecodePath path = DecodePath::kWholeToProtobuf;
    ASSERT_TRUE(DecodeTaskRequest(Sliced(bytes, 4096), Limits(UINT64_MAX, 64), &decoded, &path));
    EXPECT_EQ(path, DecodePath::kScanned);
    EXPECT_EQ(decoded.left_out.params, daemon::TooManyParamsError(100000, 64));
    EXPECT_EQ(decoded.left_out.params.message(),
              "the request has 100000 params; the limit is 64 ([limits] max_params)");
    // Neither the params nor the payload were taken; the rest was.
    EXPECT_TRUE(decoded.request.params().empty());
    EXPECT_TRUE(decoded.request.payload().empty());
    EXPECT_EQ(decoded.left_out.payload_bytes, 0u);
    EXPECT_EQ(decoded.request.kind(), "fib");
    EXPECT_EQ(decoded.request.tag(), 77u);
  }
  // At the limit, they are all there.
  DecodedTask decoded;
  ASSERT_TRUE(DecodeTaskRequest(Sliced(WithParams(64), 5), Limits(UINT64_MAX, 64), &decoded));
  EXPECT_TRUE(decoded.left_out.params.ok());
  EXPECT_EQ(decoded.request.params().size(), 64u);
  // Entries count as sent: the same key twice is two (protobuf keeps one).
  const std::string twice = absl::StrCat(
      LengthDelimited(3, absl::StrCat(LengthDelimited(1, "n"), LengthDelimited(2, "1"))),
      LengthDelimited(3, absl::StrCat(LengthDelimited(1, "n"), LengthDelimited(2, "2"))));
  ASSERT_TRUE(DecodeTaskRequest(Sliced(twice, 3), Limits(UINT64_MAX, 1), &decoded));
  EXPECT_EQ(decoded.left_out.params, daemon::TooManyParamsError(2, 1));
  ASSERT_TRUE(DecodeTaskRequest(Sliced(twice, 3), Limits(UINT64_MAX, 2), &decoded));
  EXPECT_EQ(decoded.request.params().at("n"), "2");
}

TEST(DecodeTaskRequest, AParamNameOrValueOverTheLimitIsMeasuredNotParsed) {
  const std::string long_name(9000, 'n');
  const std::string long_value(8193, 'u');
  struct Case {
    std::string entry;  // One params entry's bytes.
    std::string message;
  };
  const std::vector<Case> cases = {
      {absl::StrCat(LengthDelimited(1, "url"), LengthDelimited(2, long_value)),
       "param 'url' has a value of 8193 bytes; the limit is 8192 ([limits] max_param_bytes)"},
      // The value before the key, and the key repeated: the last key names it.
      {absl::StrCat(LengthDelimited(2, long_value), LengthDelimited(1, "old"),
                    LengthDelimited(1, "url")),
       "param 'url' has a value of 8193 bytes; the limit is 8192 ([limits] max_param_bytes)"},
      {absl::StrCat(LengthDelimited(1, long_name), LengthDelimited(2, "v")),
       absl::StrCat("param '", std::string(32, 'n'),
                    "...' has a name of 9000 bytes; the limit is 8192 ([limits] max_param_bytes)")},
      // An earlier value over the limit counts too (protobuf would copy it).
      {absl::StrCat(LengthDelimited(1, "url"), LengthDelimited(2, long_value),
                    LengthDelimited(2, "short")),
       "param 'url' has a value of 8193 bytes; the limit is 8192 ([limits] max_param_bytes)"},
  };
  for (size_t payload : {size_t{10}, kTakenApart}) {
    for (const Case& c : cases) {
      const std::string bytes = absl::StrCat(
          WithParams(2, payload), LengthDelimited(3, c.entry),
          LengthDelimited(3, absl::StrCat(LengthDelimited(1, std::string(9999, 'z')))));
      DecodedTask decoded;
      ASSERT_TRUE(DecodeTaskRequest(Sliced(bytes, 1000), Limits(UINT64_MAX, 64, 8192), &decoded));
      EXPECT_EQ(decoded.left_out.params.code(), absl::StatusCode::kResourceExhausted);
      // The first entry over the limit is named (the one after it is too).
      EXPECT_EQ(decoded.left_out.params.message(), c.message);
      EXPECT_TRUE(decoded.request.params().empty());
      EXPECT_TRUE(decoded.request.payload().empty());
      EXPECT_EQ(decoded.request.kind(), "fib");
    }
  }
  // At the limit, they are taken.
  DecodedTask decoded;
  const std::string at_limit =
      LengthDelimited(3, absl::StrCat(LengthDelimited(1, std::string(8192, 'n')),
                                      LengthDelimited(2, std::string(8192, 'v'))));
  ASSERT_TRUE(DecodeTaskRequest(Sliced(at_limit, 100), Limits(UINT64_MAX, 64, 8192), &decoded));
  EXPECT_TRUE(decoded.left_out.params.ok());
  EXPECT_EQ(decoded.request.params().at(std::string(8192, 'n')), std::string(8192, 'v'));
}

TEST(DecodeTaskRequest, UnknownFieldsAreKeptAndSkippedCorrectly) {
  const std::string bytes =
      absl::StrCat(Varint(99 << 3 | 0), Varint(1ULL << 62),                // varint, 9 bytes
                   Varint(100 << 3 | 5), std::string("\x01\x02\x03\x04"),  // fixed32
                   Varint(101 << 3 | 1), std::string(8, '\x12'),  // fixed64 of tag-like bytes
                   LengthDelimited(102, LengthDelimited(2, "not the payload")),
                   LengthDelimited(2, "payload"), LengthDelimited(1, "noop"));
  TaskRequest decoded;
  ASSERT_TRUE(DecodeScanned(bytes, 5, &decoded));
  EXPECT_EQ(decoded.payload(), "payload");
  EXPECT_EQ(decoded.kind(), "noop");
  for (size_t slice_size : {size_t{1}, size_t{5}, bytes.size()}) {
    ExpectSameAsProtobuf(bytes, slice_size, /*valid_means_scanned=*/true);
  }
}

TEST(DecodeTaskRequest, ThePayloadFieldWithAnotherWireTypeIsAnUnknownField) {
  // Field 2 as a varint, then as the real thing: protobuf keeps the first as
  // an unknown field.
  const std::string bytes =
      absl::StrCat(Varint(2 << 3 | 0), Varint(300), LengthDelimited(2, "bytes"));
  ExpectSameAsProtobuf(bytes, 1);
  TaskRequest decoded;
  ASSERT_TRUE(DecodeScanned(bytes, 1, &decoded));
  EXPECT_EQ(decoded.payload(), "bytes");
}

void ExpectBatchSameAsProtobuf(const std::string& bytes, size_t slice_size);

TEST(DecodeTaskRequest, ATagIsThirtyTwoBitsAsInProtobuf) {
  // A five-byte tag whose last byte carries bits past 32: protobuf drops them
  // (here: field 0x1213A4 as a varint, an unknown field), and so does the scan.
  const std::string bytes("\xa0\x93\x93\x90\x1a\x06", 6);
  ExpectSameAsProtobuf(bytes, 1, /*valid_means_scanned=*/true);
  ExpectBatchSameAsProtobuf(bytes, 2);
}

TEST(DecodeTaskRequest, OverlongVarintsDecodeAsProtobufDecodesThem) {
  // Tag 18 (field 2, length-delimited) and the length 3, each in two bytes.
  ExpectSameAsProtobuf(std::string("\x92\x00\x83\x00"
                                   "abc",
                                   7),
                       1);
  TaskRequest decoded;
  ASSERT_TRUE(DecodeScanned(std::string("\x92\x00\x83\x00"
                                        "abc",
                                        7),
                            2, &decoded));
  EXPECT_EQ(decoded.payload(), "abc");
}

TEST(DecodeTaskRequest, MalformedInputIsRefusedAsProtobufRefusesIt) {
  const std::vector<std::string> cases = {
      std::string(11, '\xff'),                         // a tag that never ends
      std::string("\x0a\x64kind", 6),                  // kind: 100 bytes announced, 4 there
      std::string("\x0a\x02\xc3\x28", 4),              // kind not UTF-8
      std::string("\x12\x64payload", 9),               // payload: 100 bytes announced, 7 there
      std::string("\x12\xff\xff\xff\xff\x0f", 6),      // payload length over 2^31
      std::string("\x12\x80\x80\x80\x80\x80\x01", 7),  // payload length in 6 bytes
      std::string("\x00\x01", 2),                      // field number 0
      std::string("\x0f", 1),                          // wire type 7
      std::string("\x0c", 1),                          // an end-group with no start
      absl::StrCat(LengthDelimited(2, "ok"), std::string("\x1a\x03\x0a\x01", 4)),  // params cut
      LengthDelimited(3, std::string("\x0a\x02\xc3\x28", 4)),  // a param name not UTF-8
  };
  for (const std::string& bytes : cases) {
    TaskRequest decoded;
    EXPECT_FALSE(Decode(Sliced(bytes, 1), &decoded)) << absl::CEscape(bytes);
    ExpectSameAsProtobuf(bytes, 1);
    ExpectSameAsProtobuf(bytes, 3);
  }
}

TEST(DecodeTaskRequest, UnknownGroupsAreSkippedWholeAndKept) {
  // An unknown group (field 9) holding a varint and a nested group; protobuf
  // keeps it. The scan skips it, so the params after it are still measured:
  // a group cannot smuggle them past the limits.
  const std::string group =
      absl::StrCat(Varint(9 << 3 | 3), Varint(1 << 3 | 0), Varint(5), Varint(10 << 3 | 3),
                   LengthDelimited(2, "inner"), Varint(10 << 3 | 4), Varint(9 << 3 | 4));
  const std::string bytes = absl::StrCat(group, LengthDelimited(2, "after"));
  for (size_t slice_size : {size_t{1}, size_t{2}, bytes.size()}) {
    ExpectSameAsProtobuf(bytes, slice_size, /*valid_means_scanned=*/true);
  }
  TaskRequest decoded;
  ASSERT_TRUE(DecodeScanned(bytes, 2, &decoded));
  EXPECT_EQ(decoded.payload(), "after");
  DecodedTask measured;
  ASSERT_TRUE(DecodeTaskRequest(Sliced(absl::StrCat(group, WithParams(3)), 3),
                                Limits(UINT64_MAX, 2), &measured));
  EXPECT_EQ(measured.left_out.params, daemon::TooManyParamsError(3, 2));
  // Mismatched or unclosed groups, and nesting past protobuf's limit of 100,
  // get protobuf's verdict.
  ExpectSameAsProtobuf(absl::StrCat(Varint(9 << 3 | 3), Varint(8 << 3 | 4)), 1);
  ExpectSameAsProtobuf(absl::StrCat(Varint(9 << 3 | 3), LengthDelimited(2, "x")), 1);
  for (int depth : {99, 100, 101}) {
    std::string nested;
    for (int i = 0; i < depth; ++i) nested += Varint(9 << 3 | 3);
    for (int i = 0; i < depth; ++i) nested += Varint(9 << 3 | 4);
    ExpectSameAsProtobuf(nested, 7);
  }
}

TEST(DecodeTaskRequest, EveryTruncationGetsProtobufsVerdict) {
  const std::string bytes = Full(300).SerializeAsString();
  for (size_t cut = 0; cut <= bytes.size(); ++cut) {
    ExpectSameAsProtobuf(bytes.substr(0, cut), 7, /*valid_means_scanned=*/true);
  }
  // Taken apart: cut in the fields before the payload, in it, and after it.
  const std::string large = Full(kTakenApart).SerializeAsString();
  for (size_t cut = 0; cut <= large.size();
       cut += (cut < 40 || cut + 200 > large.size()) ? 1 : 997) {
    ExpectSameAsProtobuf(large.substr(0, cut), 4096, /*valid_means_scanned=*/true);
  }
}

TEST(DecodeTaskRequest, RandomlyDamagedMessagesGetProtobufsVerdict) {
  // Valid messages with bytes flipped, dropped, duplicated or inserted: the
  // decoder and protobuf's parser must agree on every one. A fixed seed, so a
  // failure replays.
  std::mt19937 random(20261206);
  const std::string small = absl::StrCat(Full(40).SerializeAsString(), LengthDelimited(2, "again"),
                                         Varint(99 << 3 | 0), Varint(7));
  // Taken apart: the damage lands in its first 100 and last 100 bytes.
  const std::string large = absl::StrCat(LengthDelimited(2, std::string(kTakenApart, 'x')), small);
  for (int i = 0; i < 6000; ++i) {
    const std::string& base = i % 2 == 0 ? small : large;
    std::string bytes = base;
    const int edits = 1 + static_cast<int>(random() % 4);
    for (int e = 0; e < edits && !bytes.empty(); ++e) {
      size_t at = random() % std::min<size_t>(bytes.size(), 200);
      if (at >= 100 && bytes.size() > 200) at = bytes.size() - (at - 100) - 1;
      switch (random() % 4) {
        case 0:
          bytes[at] = static_cast<char>(bytes[at] ^ (1 << (random() % 8)));
          break;
        case 1:
          bytes.erase(at, 1 + random() % 4);
          break;
        case 2:
          bytes.insert(at, bytes.substr(at, 1 + random() % 8));
          break;
        default:
          bytes.insert(at, 1, static_cast<char>(random() % 256));
          break;
      }
    }
    // The large one in larger slices (tiny ones would make the test slow).
    ExpectSameAsProtobuf(bytes, (i % 2 == 0 ? 1 : 4096) + random() % 16);
    if (HasFailure()) {
      ADD_FAILURE() << "input " << i << ": " << absl::CEscape(bytes);
      return;
    }
  }
}

// DecodeTaskBatch against protobuf's parser of the whole TaskBatch: the same
// verdict, and the same tasks when both accept it.
void ExpectBatchSameAsProtobuf(const std::string& bytes, size_t slice_size) {
  SCOPED_TRACE(absl::StrCat(bytes.size(), " bytes in slices of ", slice_size));
  crunch::v1::TaskBatch expected;
  const bool expected_ok = expected.ParseFromString(bytes);
  std::vector<DecodedTask> decoded;
  const bool ok = DecodeTaskBatch(Sliced(bytes, slice_size), daemon::RequestLimits{}, &decoded);
  ASSERT_EQ(ok, expected_ok);
  if (!ok) return;
  ASSERT_EQ(decoded.size(), static_cast<size_t>(expected.tasks_size()));
  for (size_t i = 0; i < decoded.size(); ++i) {
    EXPECT_EQ(decoded[i].left_out.payload_bytes, 0u);
    EXPECT_TRUE(MessageDifferencer::Equals(decoded[i].request, expected.tasks(static_cast<int>(i))))
        << i;
  }
}

TEST(DecodeTaskBatch, DecodesEveryTaskWhateverTheSlicing) {
  crunch::v1::TaskBatch batch;
  for (size_t payload : {size_t{0}, size_t{1}, size_t{5000}, size_t{70000}}) {
    *batch.add_tasks() = Full(payload);
  }
  const std::string bytes = batch.SerializeAsString();
  for (size_t slice_size : {size_t{1}, size_t{7}, size_t{4096}, bytes.size()}) {
    std::vector<DecodedTask> decoded;
    DecodePath path = DecodePath::kWholeToProtobuf;
    ASSERT_TRUE(
        DecodeTaskBatch(Sliced(bytes, slice_size), daemon::RequestLimits{}, &decoded, &path));
    EXPECT_EQ(path, DecodePath::kScanned);
    ExpectBatchSameAsProtobuf(bytes, slice_size);
  }
  ExpectBatchSameAsProtobuf("", 1);  // No tasks.
}

TEST(DecodeTaskBatch, EachPayloadOverTheLimitIsLeftOutAndMeasured) {
  crunch::v1::TaskBatch batch;
  *batch.add_tasks() = Full(100);
  *batch.add_tasks() = Full(5000);
  *batch.add_tasks() = Full(200);
  std::vector<DecodedTask> decoded;
  ASSERT_TRUE(DecodeTaskBatch(Sliced(batch.SerializeAsString(), 9), Limits(1000), &decoded));
  ASSERT_EQ(decoded.size(), 3u);
  EXPECT_EQ(decoded[0].left_out.payload_bytes, 0u);
  EXPECT_EQ(decoded[0].request.payload(), batch.tasks(0).payload());
  EXPECT_EQ(decoded[1].left_out.payload_bytes, 5000u);
  EXPECT_TRUE(decoded[1].request.payload().empty());
  EXPECT_EQ(decoded[1].request.tag(), batch.tasks(1).tag());
  EXPECT_EQ(decoded[2].request.payload(), batch.tasks(2).payload());
}

TEST(DecodeTaskBatch, EachTaskHasItsParamsMeasured) {
  const std::string bytes =
      absl::StrCat(LengthDelimited(1, WithParams(3)), LengthDelimited(1, WithParams(65)),
                   LengthDelimited(1, WithParams(64)));
  std::vector<DecodedTask> decoded;
  ASSERT_TRUE(DecodeTaskBatch(Sliced(bytes, 11), Limits(UINT64_MAX, 64), &decoded));
  ASSERT_EQ(decoded.size(), 3u);
  EXPECT_EQ(decoded[0].request.params().size(), 3u);
  EXPECT_EQ(decoded[1].left_out.params, daemon::TooManyParamsError(65, 64));
  EXPECT_TRUE(decoded[1].request.params().empty());
  EXPECT_EQ(decoded[2].request.params().size(), 64u);
}

TEST(DecodeTaskBatch, UnknownFieldsGroupsAndDamageGetProtobufsVerdict) {
  crunch::v1::TaskBatch batch;
  *batch.add_tasks() = Full(40);
  *batch.add_tasks() = Full(3);
  const std::string valid = batch.SerializeAsString();
  // An unknown field around the tasks; field 1 as a varint (an unknown field
  // for protobuf too); a group inside a task, left to protobuf.
  ExpectBatchSameAsProtobuf(absl::StrCat(Varint(5 << 3 | 0), Varint(9), valid), 3);
  ExpectBatchSameAsProtobuf(absl::StrCat(valid, Varint(1 << 3 | 0), Varint(1)), 2);
  const std::string task_with_group =
      absl::StrCat(Varint(9 << 3 | 3), Varint(9 << 3 | 4), LengthDelimited(2, "after"));
  ExpectBatchSameAsProtobuf(absl::StrCat(LengthDelimited(1, task_with_group), valid), 4);
  // A task whose kind is not UTF-8 fails the batch, as protobuf fails it.
  ExpectBatchSameAsProtobuf(
      absl::StrCat(valid, LengthDelimited(1, LengthDelimited(1, std::string("\xc3\x28", 2)))), 5);
  // Every truncation, and random damage.
  for (size_t cut = 0; cut <= valid.size(); ++cut)
    ExpectBatchSameAsProtobuf(valid.substr(0, cut), 7);
  std::mt19937 random(20261206);
  for (int i = 0; i < 2000 && !HasFailure(); ++i) {
    std::string bytes = valid;
    const size_t at = random() % bytes.size();
    bytes[at] = static_cast<char>(bytes[at] ^ (1 << (random() % 8)));
    ExpectBatchSameAsProtobuf(bytes, 1 + random() % 16);
  }
}

}  // namespace
}  // namespace crunch::rpc::internal
