// vitdeploy's preprocessing (vitdeploy/preprocess.py), step for step: decode with OpenCV
// (IMREAD_COLOR: EXIF orientation applied, alpha dropped, grey -> 3 channels), BGR -> RGB,
// resize the short side (Pillow's resampling or cv::resize), centre crop, (x * scale - mean) / std
// in float32, HWC -> CHW.
#pragma once

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "bundle.h"
#include "pil_resample.h"

namespace vd {

// libpng and libjpeg print their complaints on stderr: captured while decoding, so that the demo
// keeps to one line (quoting them) on failure, and stays quiet on success.
class QuietStderr {
 public:
  QuietStderr() {
    std::fflush(stderr);
    file_ = std::tmpfile();
    if (file_) {
      saved_ = dup(2);
      dup2(fileno(file_), 2);
    }
  }
  // What was printed meanwhile; stderr is restored.
  std::string finish() {
    if (!file_) return "";
    std::fflush(stderr);
    dup2(saved_, 2);
    close(saved_);
    std::string text;
    char buf[4096];
    std::rewind(file_);
    size_t n;
    while ((n = std::fread(buf, 1, sizeof(buf), file_)) > 0) text.append(buf, n);
    std::fclose(file_);
    file_ = nullptr;
    return text;
  }
  ~QuietStderr() { finish(); }

 private:
  FILE* file_ = nullptr;
  int saved_ = -1;
};

// The decoder's last message, without OpenCV's "[ WARN:0@0.1] global file.cpp:12 fn " prefix.
inline std::string last_message(const std::string& text) {
  std::istringstream in(text);
  std::string line, last;
  while (std::getline(in, line))
    if (line.find_first_not_of(" \t\r") != std::string::npos) last = line;
  const size_t bracket = last.rfind("] ");
  if (!last.empty() && last[0] == '[' && bracket != std::string::npos) last = last.substr(bracket + 2);
  return one_line(last.substr(0, 200));
}

inline cv::Mat decode_image(const std::string& path) {
  if (!is_file(path)) throw Error("image not found: " + path);
  cv::Mat bgr;
  std::string said;
  {
    QuietStderr quiet;
    try {
      bgr = cv::imread(path, cv::IMREAD_COLOR);
    } catch (const cv::Exception& e) {
      quiet.finish();
      throw Error(path + " is not a decodable image (" + one_line(e.err) + ")");
    }
    said = last_message(quiet.finish());
  }
  if (bgr.empty() || bgr.type() != CV_8UC3)
    throw Error(path + " is not a decodable image (" +
                (said.empty() ? "JPEG, PNG, BMP, WebP or TIFF expected" : said) + ")");
  // OpenCV 4 fills a truncated JPEG with grey and warns; vitdeploy's Python (OpenCV 5 and
  // Pillow) refuses it: so does the demo
  if (said.find("Premature end of JPEG file") != std::string::npos)
    throw Error(path + " is not a decodable image (JPEG: " + said + ")");
  return bgr;
}

inline int cv2_flag(const std::string& name) {
  if (name == "nearest") return cv::INTER_NEAREST;
  if (name == "bilinear") return cv::INTER_LINEAR;
  if (name == "bicubic") return cv::INTER_CUBIC;
  if (name == "area") return cv::INTER_AREA;
  if (name == "lanczos") return cv::INTER_LANCZOS4;
  throw Error("unknown cv2 interpolation '" + name + "' (bilinear, bicubic, nearest, area, lanczos)");
}

// ResizeImage(resize_short): the short side becomes `short_side`, Python's round (ties to even).
inline cv::Mat resize_short(const cv::Mat& img, int short_side, const Preprocess& p) {
  const double percent = static_cast<double>(short_side) / std::min(img.cols, img.rows);
  const int w = static_cast<int>(std::nearbyint(img.cols * percent));
  const int h = static_cast<int>(std::nearbyint(img.rows * percent));
  if (w < 1 || h < 1) throw Error("image too small to resize");
  if (p.backend == "pil") {
    pil::Filter f;
    try {
      f = pil::filter_from_name(p.interpolation);
    } catch (const std::invalid_argument& e) {
      throw Error(e.what());
    }
    return pil::resize(img, w, h, f);
  }
  cv::Mat out;
  cv::resize(img, out, cv::Size(w, h), 0, 0, cv2_flag(p.interpolation));
  return out;
}

// CHW float32 of one decoded (BGR, as OpenCV gives it) image.
inline std::vector<float> preprocess_mat(const cv::Mat& bgr, const Preprocess& p,
                                         const std::string& name) {
  cv::Mat img;
  if (p.channel_order == "RGB")
    cv::cvtColor(bgr, img, cv::COLOR_BGR2RGB);
  else
    img = bgr;
  img = resize_short(img, p.resize_short, p);
  const int size = p.crop_size;
  if (img.rows < size || img.cols < size)
    throw Error(name + ": image of " + std::to_string(img.cols) + "x" + std::to_string(img.rows) +
                " is smaller than the crop size " + std::to_string(size));
  const int top = (img.rows - size) / 2, left = (img.cols - size) / 2;
  std::vector<float> chw(static_cast<size_t>(3) * size * size);
  const size_t plane = static_cast<size_t>(size) * size;
  for (int y = 0; y < size; ++y) {
    const uint8_t* row = img.ptr<uint8_t>(top + y) + left * 3;
    for (int x = 0; x < size; ++x)
      for (int c = 0; c < 3; ++c) {
        // separate float32 steps, as numpy does them (no fused multiply-add: see CMakeLists.txt)
        const float scaled = static_cast<float>(row[x * 3 + c]) * p.scale;
        const float centred = scaled - p.mean[c];
        chw[c * plane + static_cast<size_t>(y) * size + x] = centred / p.std[c];
      }
  }
  return chw;
}

inline std::vector<float> preprocess_image(const std::string& path, const Preprocess& p) {
  return preprocess_mat(decode_image(path), p, path);
}

}  // namespace vd
