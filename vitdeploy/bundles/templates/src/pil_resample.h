// Pillow's Image.resize for 8-bit images, reproduced bit for bit (src/libImaging/Resample.c and,
// for NEAREST, Geometry.c's ImagingScaleAffine): vitdeploy's "pil" backend resizes with Pillow, so
// the demo must produce the same uint8 pixels, not merely similar ones.
//
// Build with -ffp-contract=off (CMakeLists.txt does): a fused multiply-add in the coefficient
// arithmetic can move a fixed-point coefficient by one unit and change a pixel.
#pragma once

#include <opencv2/core.hpp>

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace vd {
namespace pil {

enum class Filter { kNearest, kBox, kBilinear, kHamming, kBicubic, kLanczos };

inline Filter filter_from_name(const std::string& name) {
  if (name == "nearest") return Filter::kNearest;
  if (name == "box") return Filter::kBox;
  if (name == "bilinear") return Filter::kBilinear;
  if (name == "hamming") return Filter::kHamming;
  if (name == "bicubic") return Filter::kBicubic;
  if (name == "lanczos") return Filter::kLanczos;
  throw std::invalid_argument("unknown PIL interpolation '" + name +
                              "' (bicubic, bilinear, nearest, box, hamming, lanczos)");
}

namespace detail {

constexpr double kPi = 3.14159265358979323846;
// 32 bits - 8 for the result - 2 for overflow of the negative/above-one filter lobes
constexpr int kPrecisionBits = 32 - 8 - 2;

inline double box_filter(double x) { return (x > -0.5 && x <= 0.5) ? 1.0 : 0.0; }
inline double bilinear_filter(double x) {
  if (x < 0.0) x = -x;
  return x < 1.0 ? 1.0 - x : 0.0;
}
inline double hamming_filter(double x) {
  if (x < 0.0) x = -x;
  if (x == 0.0) return 1.0;
  if (x >= 1.0) return 0.0;
  x = x * kPi;
  return std::sin(x) / x * (0.54f + 0.46f * std::cos(x));  // float constants, as in Pillow
}
inline double bicubic_filter(double x) {
  const double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}
inline double sinc_filter(double x) {
  if (x == 0.0) return 1.0;
  x = x * kPi;
  return std::sin(x) / x;
}
inline double lanczos_filter(double x) {
  return (-3.0 <= x && x < 3.0) ? sinc_filter(x) * sinc_filter(x / 3) : 0.0;
}

struct Kernel {
  double (*fn)(double);
  double support;
};

inline Kernel kernel_for(Filter f) {
  switch (f) {
    case Filter::kBox: return {box_filter, 0.5};
    case Filter::kBilinear: return {bilinear_filter, 1.0};
    case Filter::kHamming: return {hamming_filter, 1.0};
    case Filter::kBicubic: return {bicubic_filter, 2.0};
    case Filter::kLanczos: return {lanczos_filter, 3.0};
    default: throw std::invalid_argument("not a convolution filter");
  }
}

// One axis: for each output index its first input index, tap count and fixed-point weights.
struct Coeffs {
  int ksize = 0;
  std::vector<int> bounds;   // [xmin, count] per output index
  std::vector<int32_t> kk;   // ksize weights per output index
};

// precompute_coeffs + normalize_coeffs_8bpc, for the whole-image box (in0 = 0, in1 = in_size).
inline Coeffs precompute(int in_size, int out_size, const Kernel& k) {
  const float in0 = 0.f, in1 = static_cast<float>(in_size);
  double scale = static_cast<double>(in1 - in0) / out_size;
  double filterscale = scale < 1.0 ? 1.0 : scale;  // widen the support when shrinking
  const double support = k.support * filterscale;
  Coeffs c;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.bounds.assign(static_cast<size_t>(out_size) * 2, 0);
  c.kk.assign(static_cast<size_t>(out_size) * c.ksize, 0);
  std::vector<double> w(c.ksize);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = in0 + (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    double ww = 0.0;
    int xmin = static_cast<int>(center - support + 0.5);  // truncation, as Pillow's cast
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    for (int x = 0; x < xmax; ++x) {
      w[x] = k.fn((x + xmin - center + 0.5) * ss);
      ww += w[x];
    }
    int32_t* out = &c.kk[static_cast<size_t>(xx) * c.ksize];
    for (int x = 0; x < xmax; ++x) {
      const double v = ww != 0.0 ? w[x] / ww : w[x];
      out[x] = v < 0 ? static_cast<int32_t>(-0.5 + v * (1 << kPrecisionBits))
                     : static_cast<int32_t>(0.5 + v * (1 << kPrecisionBits));
    }
    c.bounds[xx * 2] = xmin;
    c.bounds[xx * 2 + 1] = xmax;
  }
  return c;
}

// clip8: the accumulator's integer part (arithmetic shift = floor) clamped to 0..255
inline uint8_t clip8(int32_t in) {
  const int32_t v = in >> kPrecisionBits;
  return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

// Horizontal pass over input rows [row0, row0 + out.rows).
inline void horizontal(const cv::Mat& in, cv::Mat& out, int row0, const Coeffs& c) {
  const int ch = in.channels();
  for (int yy = 0; yy < out.rows; ++yy) {
    const uint8_t* src = in.ptr<uint8_t>(yy + row0);
    uint8_t* dst = out.ptr<uint8_t>(yy);
    for (int xx = 0; xx < out.cols; ++xx) {
      const int xmin = c.bounds[xx * 2], xmax = c.bounds[xx * 2 + 1];
      const int32_t* k = &c.kk[static_cast<size_t>(xx) * c.ksize];
      for (int b = 0; b < ch; ++b) {
        int32_t ss = 1 << (kPrecisionBits - 1);
        for (int x = 0; x < xmax; ++x) ss += src[(x + xmin) * ch + b] * k[x];
        dst[xx * ch + b] = clip8(ss);
      }
    }
  }
}

// Vertical pass; bounds are relative to the first row of `in`.
inline void vertical(const cv::Mat& in, cv::Mat& out, const Coeffs& c, int shift) {
  const int ch = in.channels();
  for (int yy = 0; yy < out.rows; ++yy) {
    const int ymin = c.bounds[yy * 2] - shift, ymax = c.bounds[yy * 2 + 1];
    const int32_t* k = &c.kk[static_cast<size_t>(yy) * c.ksize];
    uint8_t* dst = out.ptr<uint8_t>(yy);
    for (int xx = 0; xx < out.cols * ch; ++xx) {
      int32_t ss = 1 << (kPrecisionBits - 1);
      for (int y = 0; y < ymax; ++y) ss += in.ptr<uint8_t>(y + ymin)[xx] * k[y];
      dst[xx] = clip8(ss);
    }
  }
}

// ImagingScaleAffine: Pillow's NEAREST resize samples at (x + 0.5) * in/out, truncated.
inline cv::Mat nearest(const cv::Mat& in, int w, int h) {
  const double ax = static_cast<double>(static_cast<float>(in.cols)) / w;
  const double ay = static_cast<double>(static_cast<float>(in.rows)) / h;
  std::vector<int> xin(w, -1);
  double xo = ax * 0.5;
  for (int x = 0; x < w; ++x, xo += ax) {
    const int xi = xo < 0.0 ? -1 : static_cast<int>(xo);
    if (xi >= 0 && xi < in.cols) xin[x] = xi;
  }
  cv::Mat out(h, w, in.type(), cv::Scalar::all(0));  // Pillow fills what maps outside with 0
  const size_t px = in.elemSize();
  double yo = ay * 0.5;
  for (int y = 0; y < h; ++y, yo += ay) {
    const int yi = yo < 0.0 ? -1 : static_cast<int>(yo);
    if (yi < 0 || yi >= in.rows) continue;
    const uint8_t* src = in.ptr<uint8_t>(yi);
    uint8_t* dst = out.ptr<uint8_t>(y);
    for (int x = 0; x < w; ++x)
      if (xin[x] >= 0)
        for (size_t b = 0; b < px; ++b) dst[x * px + b] = src[xin[x] * px + b];
  }
  return out;
}

}  // namespace detail

// Image.resize((w, h), filter) of an 8-bit image with 1..4 interleaved channels.
inline cv::Mat resize(const cv::Mat& in, int w, int h, Filter filter) {
  CV_Assert(in.depth() == CV_8U && w > 0 && h > 0);
  if (in.cols == w && in.rows == h) return in.clone();  // Image.resize returns a copy
  if (filter == Filter::kNearest) return detail::nearest(in, w, h);
  const detail::Kernel k = detail::kernel_for(filter);
  const bool need_h = w != in.cols, need_v = h != in.rows;
  const detail::Coeffs vert = detail::precompute(in.rows, h, k);
  // rows the vertical pass reads: only those go through the horizontal pass
  const int first = vert.bounds[0];
  const int last = vert.bounds[(h - 1) * 2] + vert.bounds[(h - 1) * 2 + 1];
  cv::Mat cur = in;
  int shift = 0;
  if (need_h) {
    const detail::Coeffs horiz = detail::precompute(in.cols, w, k);
    cv::Mat tmp(last - first, w, in.type());
    detail::horizontal(in, tmp, first, horiz);
    cur = tmp;
    shift = first;
  }
  if (!need_v) return cur.clone();
  cv::Mat out(h, cur.cols, in.type());
  detail::vertical(cur, out, vert, shift);
  return out;
}

}  // namespace pil
}  // namespace vd
