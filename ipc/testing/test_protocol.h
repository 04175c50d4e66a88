// What the ipc tests and benchmarks say to ipc_test_worker: task kinds and a
// self-checking payload format, so the worker can tell a torn or misplaced
// message from a good one and the daemon side can tell the worker did the work.
//
// Payload: [sequence: u64][filler][fnv1a64 of all bytes before it: u64]
// Echo output: every input byte XOR kEchoMask, same length.

#ifndef CRUNCH_IPC_TESTING_TEST_PROTOCOL_H_
#define CRUNCH_IPC_TESTING_TEST_PROTOCOL_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>

namespace crunch::ipc::testing {

enum TestKind : uint32_t {
  kEcho = 1,          // Check the payload, answer with its transform.
  kWriteForever = 2,  // Keep writing the output extent; never complete.
  kExit = 3,          // Exit(0) without completing.
  kCopy = 4,          // Copy input to output unchecked (what the pipe baselines do).
};

enum TestStatus : uint32_t {
  kStatusOk = 0,
  kStatusBadChecksum = 1,
  kStatusOutOfOrder = 2,
  kStatusUnknownKind = 3,
  kStatusOutputTooSmall = 4,
};

inline constexpr std::byte kEchoMask{0x5A};
inline constexpr size_t kMinPayloadBytes = 16;

inline uint64_t Fnv1a64(std::span<const std::byte> bytes) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (std::byte b : bytes) h = (h ^ static_cast<uint8_t>(b)) * 0x100000001b3ull;
  return h;
}

inline uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// REQUIRES: out.size() >= kMinPayloadBytes.
inline void FillPayload(uint64_t sequence, std::span<std::byte> out) {
  std::memcpy(out.data(), &sequence, 8);
  uint64_t state = sequence;
  for (size_t i = 8; i < out.size() - 8; ++i) out[i] = std::byte(SplitMix64(state) & 0xff);
  const uint64_t sum = Fnv1a64(out.first(out.size() - 8));
  std::memcpy(out.data() + out.size() - 8, &sum, 8);
}

// The payload's sequence number, or nullopt if it is torn or too short.
inline std::optional<uint64_t> CheckPayload(std::span<const std::byte> in) {
  if (in.size() < kMinPayloadBytes) return std::nullopt;
  uint64_t sum;
  std::memcpy(&sum, in.data() + in.size() - 8, 8);
  if (sum != Fnv1a64(in.first(in.size() - 8))) return std::nullopt;
  uint64_t sequence;
  std::memcpy(&sequence, in.data(), 8);
  return sequence;
}

inline void EchoTransform(std::span<const std::byte> in, std::span<std::byte> out) {
  for (size_t i = 0; i < in.size(); ++i) out[i] = in[i] ^ kEchoMask;
}

}  // namespace crunch::ipc::testing

#endif  // CRUNCH_IPC_TESTING_TEST_PROTOCOL_H_
