// imagekit: an example crunchd task plugin in C++.
//
// Kinds image.blur and image.resize take and return 8-bit binary PGM images
// (P5: a short text header, then one byte per pixel, row by row).
//
// C++ behind a C ABI: the plugin table is plain C structs, every run function
// is Guarded<> so no exception crosses into crunchd (std::bad_alloc becomes
// RESOURCE_EXHAUSTED), and crunch_plugin_init is extern "C".
//
// Both kinds check the whole input and the room left for output before they
// write anything, poll crunch_task_should_stop() once per row, and stream the
// result row by row, so neither holds a copy of its output.

#include <crunch/plugin.h>

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <exception>
#include <iterator>
#include <new>
#include <span>
#include <string>
#include <vector>

namespace {

// image.resize's largest width and height.
constexpr int64_t kMaxSide = 16384;
// The largest width or height read from an input header: larger ones cannot
// fit in any input crunchd accepts, and a bound keeps the arithmetic in range.
constexpr uint64_t kMaxInputSide = uint64_t{1} << 30;

// An 8-bit grayscale image whose pixels are viewed in the task's input.
struct Image {
  uint32_t width = 0;
  uint32_t height = 0;
  uint32_t maxval = 255;
  std::span<const uint8_t> pixels;  // width * height bytes, row by row.

  std::span<const uint8_t> Row(uint32_t y) const {
    return pixels.subspan(size_t{y} * width, width);
  }
};

// --- PGM ---------------------------------------------------------------------

bool IsSpace(uint8_t c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

// Reads the header fields of a PGM: whitespace and '#' comments, then a decimal number.
class HeaderReader {
 public:
  explicit HeaderReader(std::span<const uint8_t> input) : input_(input) {}

  size_t position() const { return position_; }

  // Skips whitespace and comments before a number; false if there are none.
  bool SkipSeparators() {
    const size_t start = position_;
    while (position_ < input_.size()) {
      if (IsSpace(input_[position_])) {
        ++position_;
      } else if (input_[position_] == '#') {
        while (position_ < input_.size() && input_[position_] != '\n') ++position_;
      } else {
        break;
      }
    }
    return position_ > start;
  }

  // A decimal number in 1..max; false if there is none or it is out of range.
  bool Number(uint64_t max, uint64_t& value) {
    value = 0;
    const size_t start = position_;
    for (; position_ < input_.size() && input_[position_] >= '0' && input_[position_] <= '9';
         ++position_) {
      value = value * 10 + (input_[position_] - '0');
      if (value > max) return false;
    }
    return position_ > start && value >= 1;
  }

 private:
  std::span<const uint8_t> input_;
  size_t position_ = 0;
};

// Parses a binary PGM. On failure returns why, for "not a binary PGM (P5) image: <why>".
std::string ParsePgm(std::span<const uint8_t> input, Image& image) {
  if (input.size() < 2 || input[0] != 'P' || input[1] != '5') {
    return "it does not start with \"P5\"";
  }
  HeaderReader header(input.subspan(2));
  uint64_t width = 0, height = 0, maxval = 0;
  if (!header.SkipSeparators() || !header.Number(kMaxInputSide, width)) {
    return "the width is missing or not a number in 1.." + std::to_string(kMaxInputSide);
  }
  if (!header.SkipSeparators() || !header.Number(kMaxInputSide, height)) {
    return "the height is missing or not a number in 1.." + std::to_string(kMaxInputSide);
  }
  if (!header.SkipSeparators() || !header.Number(255, maxval)) {
    return "the maxval is missing or not a number in 1..255 (16-bit images are not supported)";
  }
  // Exactly one whitespace byte separates the header from the pixels.
  const size_t pixels_at = 2 + header.position() + 1;
  if (pixels_at > input.size() || !IsSpace(input[pixels_at - 1])) {
    return "the header does not end with a whitespace byte after the maxval";
  }
  const uint64_t needed = width * height;
  const uint64_t given = input.size() - pixels_at;
  if (given != needed) {
    return "a " + std::to_string(width) + "x" + std::to_string(height) + " image has " +
           std::to_string(needed) + " bytes of pixels, but " + std::to_string(given) +
           " follow the header";
  }
  image.width = static_cast<uint32_t>(width);
  image.height = static_cast<uint32_t>(height);
  image.maxval = static_cast<uint32_t>(maxval);
  image.pixels = input.subspan(pixels_at);
  return "";
}

// Parses the task's input as a PGM, or fails the task with INVALID_ARGUMENT.
int ReadInput(crunch_task* task, Image& image) {
  const std::string why = ParsePgm(std::span(task->input, task->input_size), image);
  if (why.empty()) return CRUNCH_OK;
  return crunch_task_fail(task, CRUNCH_INVALID_ARGUMENT, "not a binary PGM (P5) image: %s",
                          why.c_str());
}

// Writes the header of a width x height PGM, after checking that it and the
// pixels fit in the output the task may still write.
int WriteHeader(crunch_task* task, uint32_t width, uint32_t height, uint32_t maxval) {
  char header[64];
  const int size = snprintf(header, sizeof(header), "P5\n%" PRIu32 " %" PRIu32 "\n%" PRIu32 "\n",
                            width, height, maxval);
  const uint64_t needed = static_cast<uint64_t>(size) + uint64_t{width} * height;
  const uint64_t remaining = crunch_task_output_remaining(task);
  if (needed > remaining) {
    return crunch_task_fail(task, CRUNCH_RESOURCE_EXHAUSTED,
                            "the %" PRIu32 "x%" PRIu32 " output image takes %" PRIu64
                            " bytes, but the task may write only %" PRIu64
                            " (see max_output_bytes in crunchd.toml)",
                            width, height, needed, remaining);
  }
  return crunch_task_write(task, header, static_cast<size_t>(size));
}

// Rounds a filtered value to a pixel.
uint8_t ToPixel(float value, uint32_t maxval) {
  return static_cast<uint8_t>(std::clamp(std::lround(value), 0L, static_cast<long>(maxval)));
}

// --- the kinds ---------------------------------------------------------------

// CRUNCH_OK while the task may go on; else fails it with the status to end with.
int Stopped(crunch_task* task, const char* kind) {
  const int code = crunch_task_should_stop(task);
  if (code == CRUNCH_OK) return CRUNCH_OK;
  return crunch_task_fail(task, code,
                          code == CRUNCH_CANCELLED ? "%s was cancelled before it finished"
                                                   : "%s did not finish before the task's deadline",
                          kind);
}

int64_t IntParam(const crunch_task* task, const char* name) {
  const crunch_param* p = crunch_task_param(task, name);
  return p != nullptr && p->present ? p->int_value : 0;
}

// A normalized Gaussian kernel of radius ceil(3 sigma): weights[radius + i] is the weight at i.
std::vector<float> GaussianKernel(double sigma) {
  const int radius = static_cast<int>(std::ceil(3 * sigma));
  std::vector<float> weights(2 * radius + 1);
  double sum = 0;
  for (int i = -radius; i <= radius; ++i) {
    const double w = std::exp(-(i * i) / (2 * sigma * sigma));
    weights[i + radius] = static_cast<float>(w);
    sum += w;
  }
  for (float& w : weights) w = static_cast<float>(w / sum);
  return weights;
}

// Separable Gaussian blur: each row along x into a float image, then each
// output row as a weighted sum of those rows. Edges repeat the border pixel.
int RunBlur(crunch_task* task) {
  Image in;
  if (int code = ReadInput(task, in); code != CRUNCH_OK) return code;
  if (int code = WriteHeader(task, in.width, in.height, in.maxval); code != CRUNCH_OK) return code;

  const std::vector<float> weights = GaussianKernel(IntParam(task, "sigma_tenths") / 10.0);
  const size_t radius = weights.size() / 2;
  const size_t width = in.width;

  std::vector<float> horizontal(width * in.height);
  std::vector<uint8_t> padded(width + 2 * radius);  // One row with its edges repeated.
  for (uint32_t y = 0; y < in.height; ++y) {
    if (int code = Stopped(task, "image.blur"); code != CRUNCH_OK) return code;
    const std::span<const uint8_t> row = in.Row(y);
    std::fill_n(padded.begin(), radius, row.front());
    std::copy(row.begin(), row.end(), padded.begin() + radius);
    std::fill_n(padded.begin() + radius + width, radius, row.back());
    float* out = &horizontal[y * width];
    for (size_t x = 0; x < width; ++x) {
      float sum = 0;
      for (size_t k = 0; k < weights.size(); ++k) sum += weights[k] * padded[x + k];
      out[x] = sum;
    }
  }

  std::vector<float> sum(width);
  std::vector<uint8_t> row(width);
  const int64_t last = in.height - 1;
  for (int64_t y = 0; y < in.height; ++y) {
    if (int code = Stopped(task, "image.blur"); code != CRUNCH_OK) return code;
    std::fill(sum.begin(), sum.end(), 0.0f);
    for (size_t k = 0; k < weights.size(); ++k) {
      const int64_t source =
          std::clamp<int64_t>(y + static_cast<int64_t>(k) - static_cast<int64_t>(radius), 0, last);
      const float* src = &horizontal[source * width];
      for (size_t x = 0; x < width; ++x) sum[x] += weights[k] * src[x];
    }
    for (size_t x = 0; x < width; ++x) row[x] = ToPixel(sum[x], in.maxval);
    if (int code = crunch_task_write(task, row.data(), row.size()); code != CRUNCH_OK) return code;
  }
  return CRUNCH_OK;
}

// Where an output pixel samples the input along one axis: between pixels
// `low` and `high`, `fraction` of the way to `high`.
struct Sample {
  uint32_t low;
  uint32_t high;
  float fraction;
};

// Aligns pixel centres: output pixel i sits at input coordinate
// (i + 0.5) * in / out - 0.5, clamped to the image.
std::vector<Sample> Samples(uint32_t in, uint32_t out) {
  std::vector<Sample> samples(out);
  const double scale = static_cast<double>(in) / out;
  for (uint32_t i = 0; i < out; ++i) {
    const double at = std::clamp((i + 0.5) * scale - 0.5, 0.0, in - 1.0);
    const auto low = static_cast<uint32_t>(at);
    samples[i] = {low, std::min(low + 1, in - 1), static_cast<float>(at - low)};
  }
  return samples;
}

// Bilinear resize to width x height.
int RunResize(crunch_task* task) {
  Image in;
  if (int code = ReadInput(task, in); code != CRUNCH_OK) return code;
  const auto width = static_cast<uint32_t>(IntParam(task, "width"));
  const auto height = static_cast<uint32_t>(IntParam(task, "height"));
  if (width == 0 || height == 0) {
    return crunch_task_fail(task, CRUNCH_INVALID_ARGUMENT,
                            "image.resize needs params width and height, each in 1..%" PRId64,
                            kMaxSide);
  }
  if (int code = WriteHeader(task, width, height, in.maxval); code != CRUNCH_OK) return code;

  const std::vector<Sample> xs = Samples(in.width, width);
  const std::vector<Sample> ys = Samples(in.height, height);
  std::vector<uint8_t> row(width);
  for (uint32_t y = 0; y < height; ++y) {
    if (int code = Stopped(task, "image.resize"); code != CRUNCH_OK) return code;
    const std::span<const uint8_t> top = in.Row(ys[y].low);
    const std::span<const uint8_t> bottom = in.Row(ys[y].high);
    const float fy = ys[y].fraction;
    for (uint32_t x = 0; x < width; ++x) {
      const Sample& s = xs[x];
      const float upper = top[s.low] + s.fraction * (top[s.high] - top[s.low]);
      const float lower = bottom[s.low] + s.fraction * (bottom[s.high] - bottom[s.low]);
      row[x] = ToPixel(upper + fy * (lower - upper), in.maxval);
    }
    if (int code = crunch_task_write(task, row.data(), row.size()); code != CRUNCH_OK) return code;
  }
  return CRUNCH_OK;
}

// The boundary: no exception may unwind into crunchd's C caller.
template <int (*run)(crunch_task*)>
int Guarded(crunch_task* task) noexcept {
  try {
    return run(task);
  } catch (const std::bad_alloc&) {
    return crunch_task_fail(task, CRUNCH_RESOURCE_EXHAUSTED,
                            "imagekit ran out of memory (the image is too large for the "
                            "worker's memory limit)");
  } catch (const std::exception& e) {
    return crunch_task_fail(task, CRUNCH_INTERNAL, "imagekit failed: %s", e.what());
  } catch (...) {
    return crunch_task_fail(task, CRUNCH_INTERNAL, "imagekit failed with an unknown exception");
  }
}

// --- the table ---------------------------------------------------------------

constexpr crunch_param_spec kBlurParams[] = {
    {
        .name = "sigma_tenths",
        .type = CRUNCH_PARAM_INT,
        .description = "the Gaussian's standard deviation in tenths of a pixel (10: sigma 1.0)",
        .default_value = "10",
        .min = 1,
        .max = 200,
    },
};

constexpr crunch_param_spec kResizeParams[] = {
    {
        .name = "width",
        .type = CRUNCH_PARAM_INT,
        .description = "the output width in pixels",
        .required = 1,
        .min = 1,
        .max = kMaxSide,
    },
    {
        .name = "height",
        .type = CRUNCH_PARAM_INT,
        .description = "the output height in pixels",
        .required = 1,
        .min = 1,
        .max = kMaxSide,
    },
};

constexpr crunch_kind kKinds[] = {
    {
        .name = "image.blur",
        .description = "Gaussian blur of an 8-bit binary PGM (P5) image; returns a PGM of the "
                       "same size.",
        .params = kBlurParams,
        .param_count = std::size(kBlurParams),
        .run = Guarded<RunBlur>,
        // The same pixels under a header no longer than the input's.
        .output = {.bounded = 1, .fixed_bytes = 0, .per_input_kib = 1024},
    },
    {
        .name = "image.resize",
        .description = "Resizes an 8-bit binary PGM (P5) image to width x height (bilinear); "
                       "returns a PGM.",
        .params = kResizeParams,
        .param_count = std::size(kResizeParams),
        .run = Guarded<RunResize>,
        // Set by the params, not the input: no bound known before the task runs.
        .output = {.bounded = 0},
    },
};

constexpr crunch_plugin kPlugin = {
    .abi_version = CRUNCH_PLUGIN_ABI_VERSION,
    .name = "imagekit",
    .version = "1.0.0",
    .kinds = kKinds,
    .kind_count = std::size(kKinds),
};

}  // namespace

extern "C" CRUNCH_PLUGIN_EXPORT const crunch_plugin* crunch_plugin_init(void) { return &kPlugin; }
