// The model through Paddle Lite's light API (MobileConfig + CreatePaddlePredictor).
//
// Paddle Lite's release libraries report a bad model with CHECK failures that print several log
// lines and abort(), not with exceptions. The demo promises one line on stderr and exit code 1, so
// while the model loads, stderr goes to a temporary file and a fatal signal becomes that line
// (quoting the last thing Lite printed) and _exit(1).
#pragma once

#include <paddle_api.h>

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "bundle.h"

namespace vd {

namespace guard {

static int g_saved_stderr = -1;
static int g_capture_fd = -1;
static char g_prefix[1024];  // "error: cannot load model PATH: "
static const int kSignals[4] = {SIGABRT, SIGSEGV, SIGBUS, SIGFPE};

// Last non-empty line of what Lite printed, minus its "[F 1/ 2 ...cc:12 Fn] " log prefix.
inline size_t last_line(char* buf, size_t n, const char** start) {
  while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ')) --n;
  size_t b = n;
  while (b && buf[b - 1] != '\n') --b;
  if (b < n && buf[b] == '[') {
    size_t e = b;
    while (e < n && buf[e] != ']') ++e;
    if (e < n) b = e + 1;
    while (b < n && buf[b] == ' ') ++b;
  }
  *start = buf + b;
  return n - b;
}

// Async-signal-safe: only read/write/dup2/_exit.
inline void on_fatal(int sig) {
  if (g_saved_stderr >= 0) dup2(g_saved_stderr, 2);
  static char tail[2048];
  ssize_t got = 0;
  if (g_capture_fd >= 0) {
    const off_t end = lseek(g_capture_fd, 0, SEEK_END);
    const off_t from = end > static_cast<off_t>(sizeof(tail)) ? end - sizeof(tail) : 0;
    if (lseek(g_capture_fd, from, SEEK_SET) >= 0) got = read(g_capture_fd, tail, sizeof(tail));
  }
  const char* line = nullptr;
  size_t len = got > 0 ? last_line(tail, static_cast<size_t>(got), &line) : 0;
  if (len > 300) len = 300;
  const char* what = sig == SIGABRT ? "Paddle Lite aborted on it (corrupt model, or written by "
                                      "another opt version?)"
                                    : "Paddle Lite crashed on it (corrupt model?)";
  ssize_t w = write(2, g_prefix, strlen(g_prefix));
  if (len)
    w = write(2, line, len);
  else
    w = write(2, what, strlen(what));
  w = write(2, "\n", 1);
  (void)w;
  _exit(1);
}

class Capture {
 public:
  explicit Capture(const std::string& model) {
    std::snprintf(g_prefix, sizeof(g_prefix), "error: cannot load model %s: ", model.c_str());
    std::fflush(stderr);
    FILE* tmp = std::tmpfile();  // may fail (no writable tmp dir): then Lite prints as it likes
    if (tmp) {
      file_ = tmp;
      g_capture_fd = fileno(tmp);
      g_saved_stderr = dup(2);
      dup2(g_capture_fd, 2);
    }
    struct sigaction sa;
    std::memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_fatal;
    for (int i = 0; i < 4; ++i) sigaction(kSignals[i], &sa, &old_[i]);
  }
  // The last line Lite printed (for a load that failed without a signal).
  std::string restore() {
    if (restored_) return "";
    restored_ = true;
    for (int i = 0; i < 4; ++i) sigaction(kSignals[i], &old_[i], nullptr);
    std::string last;
    if (file_) {
      std::fflush(stderr);
      dup2(g_saved_stderr, 2);
      close(g_saved_stderr);
      g_saved_stderr = -1;
      g_capture_fd = -1;
      char buf[2048];
      std::fseek(file_, 0, SEEK_END);
      const long end = std::ftell(file_);
      std::fseek(file_, end > 2048 ? end - 2048 : 0, SEEK_SET);
      const size_t n = std::fread(buf, 1, sizeof(buf), file_);
      const char* line = nullptr;
      const size_t len = last_line(buf, n, &line);
      last.assign(line ? line : "", len);
      std::fclose(file_);
      file_ = nullptr;
    }
    return last;
  }
  ~Capture() { restore(); }

 private:
  struct sigaction old_[4];
  FILE* file_ = nullptr;
  bool restored_ = false;
};

}  // namespace guard

// Lite's naive-buffer header (uint16 meta version, char[16] opt version, uint64 topology size):
// checked first so that a file that is plainly no .nb gets a clear line.
inline void check_nb_header(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) throw Error("model not found: " + path);
  const uint64_t size = static_cast<uint64_t>(f.tellg());
  unsigned char h[26] = {0};
  f.seekg(0);
  f.read(reinterpret_cast<char*>(h), sizeof(h));
  const std::string bad = path + " is not a Paddle Lite naive-buffer model (.nb from opt)";
  if (!f || size < sizeof(h)) throw Error(bad);
  const unsigned meta = h[0] | (h[1] << 8);
  uint64_t topo = 0;
  for (int i = 7; i >= 0; --i) topo = (topo << 8) | h[18 + i];
  if ((meta != 1 && meta != 2) || h[2] != 'v' || topo == 0 || topo > size - sizeof(h))
    throw Error(bad);
}

class Model {
 public:
  Model(const std::string& path, int threads, int power_mode, int64_t num_classes)
      : num_classes_(num_classes) {
    check_nb_header(path);
    paddle::lite_api::MobileConfig config;
    config.set_model_from_file(path);
    config.set_threads(threads);
    config.set_power_mode(static_cast<paddle::lite_api::PowerMode>(power_mode));
    guard::Capture capture(path);
    std::string failure;
    try {
      predictor_ = paddle::lite_api::CreatePaddlePredictor<paddle::lite_api::MobileConfig>(config);
    } catch (const std::exception& e) {
      failure = one_line(e.what());
    }
    const std::string printed = capture.restore();
    if (!predictor_ || !failure.empty())
      throw Error("cannot load model " + path + ": " +
                  (!failure.empty() ? failure : printed.empty() ? "Paddle Lite failed" : printed));
  }

  // Raw outputs of one [1, 3, H, W] input; `ms` gets the Run() time.
  std::vector<float> run(const std::vector<float>& chw, const std::vector<int64_t>& shape,
                         double* ms = nullptr) {
    std::unique_ptr<paddle::lite_api::Tensor> in(predictor_->GetInput(0));
    in->Resize(shape);
    std::memcpy(in->mutable_data<float>(), chw.data(), chw.size() * sizeof(float));
    const auto t0 = std::chrono::steady_clock::now();
    predictor_->Run();
    const auto t1 = std::chrono::steady_clock::now();
    if (ms) *ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
    std::unique_ptr<const paddle::lite_api::Tensor> out(predictor_->GetOutput(0));
    int64_t n = 1;
    for (int64_t d : out->shape()) n *= d;
    if (n != num_classes_)
      throw Error("the model gives " + std::to_string(n) + " outputs, config.json says " +
                  "num_classes " + std::to_string(num_classes_));
    const float* data = out->data<float>();
    return std::vector<float>(data, data + n);
  }

 private:
  std::shared_ptr<paddle::lite_api::PaddlePredictor> predictor_;
  int64_t num_classes_;
};

}  // namespace vd
