// vitdeploy's ARM runner: one Paddle Lite .nb on Paddle Lite's own ARM kernels (built from
// source for armv8 or armv7 by vitdeploy/lite/arm.py), driven by the lite-arm runtime over
// stdin/stdout, under QEMU user-mode emulation on an x86 host (natively on an ARM one).
//
//   arm_runner MODEL.nb THREADS POWER_MODE
//
// Binary protocol, little-endian (the host is x86 or ARM, both little-endian):
//   runner -> host once loaded:  "RDY1"
//   host -> runner:               "RUN1" int32 n, c, h, w, then n*c*h*w float32 (NCHW)
//   runner -> host:               "OUT1" int32 rows, cols, float64 ms, then rows*cols float32
//                                 ms: the predictor's Run() alone, timed here
//   host -> runner:               "QUIT" (or end of input): exit 0
// A model Paddle Lite cannot load aborts inside Lite: the host reads the reason on stderr.
#include <paddle_api.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace {

bool read_exact(void* dst, size_t n) {
  return n == 0 || std::fread(dst, 1, n, stdin) == n;
}

void write_exact(const void* src, size_t n) {
  if (n && std::fwrite(src, 1, n, stdout) != n) std::exit(3);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s MODEL.nb THREADS POWER_MODE\n", argv[0]);
    return 1;
  }
  paddle::lite_api::MobileConfig config;
  config.set_model_from_file(argv[1]);
  config.set_threads(std::atoi(argv[2]));
  config.set_power_mode(static_cast<paddle::lite_api::PowerMode>(std::atoi(argv[3])));
  std::shared_ptr<paddle::lite_api::PaddlePredictor> predictor;
  try {
    predictor = paddle::lite_api::CreatePaddlePredictor<paddle::lite_api::MobileConfig>(config);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: cannot load %s: %s\n", argv[1], e.what());
    return 1;
  }
  write_exact("RDY1", 4);
  std::fflush(stdout);
  std::vector<float> input;
  char tag[4];
  while (read_exact(tag, 4)) {
    if (std::memcmp(tag, "QUIT", 4) == 0) break;
    if (std::memcmp(tag, "RUN1", 4) != 0) {
      std::fprintf(stderr, "error: unknown request\n");
      return 2;
    }
    int32_t shape[4];
    if (!read_exact(shape, sizeof(shape))) return 2;
    const int64_t count = int64_t(shape[0]) * shape[1] * shape[2] * shape[3];
    input.resize(static_cast<size_t>(count));
    if (!read_exact(input.data(), input.size() * sizeof(float))) return 2;
    auto in = predictor->GetInput(0);
    in->Resize({shape[0], shape[1], shape[2], shape[3]});
    std::memcpy(in->mutable_data<float>(), input.data(), input.size() * sizeof(float));
    double ms = 0;
    try {
      const auto t0 = std::chrono::steady_clock::now();
      predictor->Run();
      ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "error: Paddle Lite failed on a [%d, %d, %d, %d] batch: %s\n",
                   shape[0], shape[1], shape[2], shape[3], e.what());
      return 1;
    }
    auto out = predictor->GetOutput(0);
    const auto dims = out->shape();
    int32_t rows = dims.empty() ? 0 : static_cast<int32_t>(dims[0]);
    int64_t total = 1;
    for (auto d : dims) total *= d;
    int32_t cols = rows ? static_cast<int32_t>(total / rows) : 0;
    write_exact("OUT1", 4);
    write_exact(&rows, 4);
    write_exact(&cols, 4);
    write_exact(&ms, 8);
    write_exact(out->data<float>(), static_cast<size_t>(total) * sizeof(float));
    std::fflush(stdout);
  }
  return 0;
}
