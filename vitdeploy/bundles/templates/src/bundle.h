// The bundle on disk: config.json (read with cv::FileStorage), labels.txt, float32 raw files.
// See docs/bundle-format.md of vitdeploy: every rule here mirrors it.
#pragma once

#include <opencv2/core.hpp>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace vd {

// Every failure the user can cause: main() prints what() as one line and exits 1.
struct Error : std::runtime_error {
  explicit Error(const std::string& m) : std::runtime_error(m) {}
};

struct Preprocess {
  int resize_short = 0;
  int crop_size = 0;
  std::string interpolation, backend, channel_order;
  float scale = 0.f;
  float mean[3] = {0, 0, 0};
  float std[3] = {1, 1, 1};
};

struct Selfcheck {
  int count = 0;
  std::vector<std::string> images;
  std::string inputs, outputs;
  double min_cosine = 1, min_top1_agreement = 1, max_abs = -1;
  double pixel_tolerance = 0, pixel_min_fraction = 1;
};

struct Config {
  std::string model, target, arch;
  int num_classes = 0;
  std::vector<int64_t> input_shape;  // [1, 3, H, W]
  Preprocess pre;
  int outputs_probabilities = 0;
  int topk = 5;
  bool has_selfcheck = false;
  Selfcheck selfcheck;
};

inline std::string join_path(const std::string& dir, const std::string& rel) {
  if (rel.empty() || rel[0] == '/' || dir.empty() || dir == ".") return rel;
  return dir.back() == '/' ? dir + rel : dir + "/" + rel;
}

inline bool is_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return f.good();
}

// One line: OpenCV's messages can hold newlines and the source path of the throw.
inline std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

namespace detail {

class Reader {
 public:
  explicit Reader(const std::string& where) : where_(where) {}

  cv::FileNode need(const cv::FileNode& parent, const char* key, const std::string& path) const {
    cv::FileNode n = parent[key];
    if (n.empty() || n.isNone()) fail(path + " is missing");
    return n;
  }
  double number(const cv::FileNode& p, const char* key, const std::string& path) const {
    cv::FileNode n = need(p, key, path);
    if (!n.isInt() && !n.isReal()) fail(path + " must be a number");
    return n.real();
  }
  int integer(const cv::FileNode& p, const char* key, const std::string& path) const {
    cv::FileNode n = need(p, key, path);
    if (!n.isInt()) fail(path + " must be an integer");
    return static_cast<int>(n);
  }
  std::string text(const cv::FileNode& p, const char* key, const std::string& path) const {
    cv::FileNode n = need(p, key, path);
    if (!n.isString()) fail(path + " must be a string");
    return n.string();
  }
  std::vector<double> numbers(const cv::FileNode& p, const char* key, const std::string& path,
                              size_t count) const {
    cv::FileNode n = need(p, key, path);
    std::vector<double> out;
    if (n.isSeq())
      for (cv::FileNodeIterator it = n.begin(); it != n.end(); ++it) {
        if (!(*it).isInt() && !(*it).isReal()) fail(path + " must hold numbers");
        out.push_back((*it).real());
      }
    if (!n.isSeq() || (count && out.size() != count))
      fail(path + " must be a list of " + std::to_string(count) + " numbers");
    return out;
  }
  [[noreturn]] void fail(const std::string& what) const {
    throw Error("bad config " + where_ + ": " + what);
  }

 private:
  std::string where_;
};

}  // namespace detail

inline Config load_config(const std::string& bundle) {
  const std::string path = join_path(bundle, "config.json");
  if (!is_file(path)) throw Error("config not found: " + path + " (pass --bundle DIR)");
  cv::FileStorage fs;
  try {
    fs.open(path, cv::FileStorage::READ | cv::FileStorage::FORMAT_JSON);
  } catch (const cv::Exception& e) {
    throw Error("bad config " + path + ": not valid JSON (" + one_line(e.err) + ")");
  }
  if (!fs.isOpened()) throw Error("bad config " + path + ": cannot be parsed as JSON");
  const detail::Reader r(path);
  const cv::FileNode root = fs.root();
  if (!root.isMap()) r.fail("not a JSON object");
  Config c;
  const std::string format = r.text(root, "format", "format");
  if (format != "vitdeploy-bundle/1")
    r.fail("format is '" + format + "', this demo reads vitdeploy-bundle/1");
  c.model = r.text(root, "model", "model");
  c.target = r.text(root, "target", "target");
  c.arch = r.text(root, "arch", "arch");
  c.num_classes = r.integer(root, "num_classes", "num_classes");
  if (c.num_classes < 1) r.fail("num_classes must be positive");
  const cv::FileNode input = r.need(root, "input", "input");
  for (double v : r.numbers(input, "shape", "input.shape", 4)) c.input_shape.push_back(int64_t(v));
  if (c.input_shape[0] != 1 || c.input_shape[1] != 3 || c.input_shape[2] < 1 ||
      c.input_shape[3] < 1)
    r.fail("input.shape must be [1, 3, H, W]");

  const cv::FileNode pre = r.need(root, "preprocess", "preprocess");
  Preprocess& p = c.pre;
  p.resize_short = r.integer(pre, "resize_short", "preprocess.resize_short");
  p.crop_size = r.integer(pre, "crop_size", "preprocess.crop_size");
  p.interpolation = r.text(pre, "interpolation", "preprocess.interpolation");
  p.backend = r.text(pre, "backend", "preprocess.backend");
  p.scale = static_cast<float>(r.number(pre, "scale", "preprocess.scale"));
  const std::vector<double> mean = r.numbers(pre, "mean", "preprocess.mean", 3);
  const std::vector<double> stdv = r.numbers(pre, "std", "preprocess.std", 3);
  for (int i = 0; i < 3; ++i) {
    p.mean[i] = static_cast<float>(mean[i]);  // float32, as vitdeploy's Python normalizes
    p.std[i] = static_cast<float>(stdv[i]);
    if (!(p.std[i] > 0)) r.fail("preprocess.std must be positive");
  }
  p.channel_order = pre["channel_order"].isString() ? pre["channel_order"].string() : "RGB";
  if (p.channel_order != "RGB" && p.channel_order != "BGR")
    r.fail("preprocess.channel_order must be RGB or BGR");
  if (p.backend != "pil" && p.backend != "cv2") r.fail("preprocess.backend must be pil or cv2");
  const char* const pil_names[] = {"bicubic", "bilinear", "nearest", "box", "hamming", "lanczos"};
  const char* const cv2_names[] = {"bilinear", "bicubic", "nearest", "area", "lanczos"};
  bool known = false;
  if (p.backend == "pil")
    for (const char* n : pil_names) known = known || p.interpolation == n;
  else
    for (const char* n : cv2_names) known = known || p.interpolation == n;
  if (!known) r.fail("unknown " + p.backend + " interpolation '" + p.interpolation + "'");
  if (p.resize_short < 1 || p.crop_size < 1) r.fail("preprocess sizes must be positive");
  if (p.crop_size != c.input_shape[2] || p.crop_size != c.input_shape[3])
    r.fail("preprocess.crop_size does not match input.shape");

  c.outputs_probabilities = r.integer(root, "outputs_probabilities", "outputs_probabilities");
  c.topk = root["topk"].isInt() ? static_cast<int>(root["topk"]) : 5;

  const cv::FileNode sc = root["selfcheck"];
  if (!sc.empty() && sc.isMap()) {
    c.has_selfcheck = true;
    Selfcheck& s = c.selfcheck;
    s.count = r.integer(sc, "count", "selfcheck.count");
    const cv::FileNode images = r.need(sc, "images", "selfcheck.images");
    if (!images.isSeq()) r.fail("selfcheck.images must be a list");
    for (cv::FileNodeIterator it = images.begin(); it != images.end(); ++it) {
      if (!(*it).isString()) r.fail("selfcheck.images must hold strings");
      s.images.push_back((*it).string());
    }
    if (static_cast<int>(s.images.size()) != s.count)
      r.fail("selfcheck.count does not match selfcheck.images");
    s.inputs = r.text(sc, "inputs", "selfcheck.inputs");
    s.outputs = r.text(sc, "outputs", "selfcheck.outputs");
    s.min_cosine = r.number(sc, "min_cosine", "selfcheck.min_cosine");
    s.min_top1_agreement = r.number(sc, "min_top1_agreement", "selfcheck.min_top1_agreement");
    s.max_abs = r.number(sc, "max_abs", "selfcheck.max_abs");
    s.pixel_tolerance = r.number(sc, "pixel_tolerance", "selfcheck.pixel_tolerance");
    s.pixel_min_fraction = r.number(sc, "pixel_min_fraction", "selfcheck.pixel_min_fraction");
  }
  return c;
}

// labels.txt: one label per line; a missing file is not an error (class ids are shown instead).
inline std::vector<std::string> read_labels(const std::string& path) {
  std::vector<std::string> labels;
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    labels.push_back(line);
  }
  return labels;
}

inline std::vector<float> read_floats(const std::string& path, size_t count) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) throw Error("cannot read " + path);
  const std::streamoff size = f.tellg();
  if (size != static_cast<std::streamoff>(count * sizeof(float)))
    throw Error(path + " holds " + std::to_string(size) + " bytes, expected " +
                std::to_string(count * sizeof(float)) + " (float32)");
  std::vector<float> out(count);
  f.seekg(0);
  f.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(size));
  if (!f) throw Error("cannot read " + path);
  return out;  // little-endian on every target this demo builds for
}

inline void write_floats(const std::string& path, const std::vector<float>& data) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(data.data()),
          static_cast<std::streamsize>(data.size() * sizeof(float)));
  if (!f) throw Error("cannot write " + path);
}

}  // namespace vd
