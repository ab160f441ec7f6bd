// vitdeploy_demo: classify images with a vitdeploy bundle (Paddle Lite light API + OpenCV), and
// --selfcheck it against the reference inputs/outputs vitdeploy computed in Python.
// Exit codes: 0 ok, 1 error (one line on stderr), 2 self-check failed.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "bundle.h"
#include "lite_model.h"
#include "preprocess.h"

namespace {

const char* kUsage =
    "usage: vitdeploy_demo [--bundle DIR] [--topk K] [--threads N] [--power-mode 0..3]\n"
    "                      [--warmup W] [--repeats R] [--json] [--dump-input FILE]\n"
    "                      [--dump-output FILE] [--preprocess-only] IMAGE...\n"
    "       vitdeploy_demo --selfcheck [--bundle DIR] [--threads N] [--power-mode M] [--json]\n"
    "power mode: 0 HIGH, 1 LOW, 2 FULL, 3 NO_BIND (no effect on x86); defaults: --threads 1\n"
    "--power-mode 0 --warmup 1 --repeats 5 --topk from config.json\n"
    "--preprocess-only: preprocess (and --dump-input) without loading the model\n";

struct Args {
  std::string bundle, dump_input, dump_output;
  int topk = 0, threads = 1, power_mode = 0, warmup = 1, repeats = 5;
  bool json = false, selfcheck = false, preprocess_only = false;
  std::vector<std::string> images;
};

int to_int(const std::string& opt, const std::string& v, int lo, int hi) {
  char* end = nullptr;
  const long n = std::strtol(v.c_str(), &end, 10);
  if (v.empty() || *end || n < lo || n > hi)
    throw vd::Error(opt + " expects an integer in " + std::to_string(lo) + ".." +
                    std::to_string(hi) + ", got '" + v + "'");
  return static_cast<int>(n);
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string opt = argv[i], val;
    const bool is_opt = opt.size() > 1 && opt[0] == '-';
    const size_t eq = opt.find('=');
    bool inline_val = is_opt && eq != std::string::npos;
    if (inline_val) {
      val = opt.substr(eq + 1);
      opt = opt.substr(0, eq);
    }
    auto value = [&]() -> std::string {
      if (inline_val) return val;
      if (i + 1 >= argc) throw vd::Error(opt + " needs a value");
      return argv[++i];
    };
    if (!is_opt) a.images.push_back(opt);
    else if (opt == "-h" || opt == "--help") { std::cout << kUsage; std::exit(0); }
    else if (opt == "--bundle") a.bundle = value();
    else if (opt == "--topk") a.topk = to_int(opt, value(), 1, 1 << 20);
    else if (opt == "--threads") a.threads = to_int(opt, value(), 1, 256);
    else if (opt == "--power-mode") a.power_mode = to_int(opt, value(), 0, 3);
    else if (opt == "--warmup") a.warmup = to_int(opt, value(), 0, 1000000);
    else if (opt == "--repeats") a.repeats = to_int(opt, value(), 1, 1000000);
    else if (opt == "--dump-input") a.dump_input = value();
    else if (opt == "--dump-output") a.dump_output = value();
    else if (opt == "--json") a.json = true;
    else if (opt == "--selfcheck") a.selfcheck = true;
    else if (opt == "--preprocess-only") a.preprocess_only = true;
    else throw vd::Error("unknown option " + opt + " (see --help)");
  }
  if (a.selfcheck && !a.images.empty()) throw vd::Error("--selfcheck takes no images");
  if (!a.selfcheck && a.images.empty()) throw vd::Error("no images given (see --help)");
  return a;
}

// The directory of the executable when it holds a config.json (the bundle as pushed to a phone),
// else the working directory.
std::string default_bundle(const char* argv0) {
  std::string exe;
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n > 0) exe.assign(buf, static_cast<size_t>(n));
  else exe = argv0;
  const size_t slash = exe.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : exe.substr(0, slash);
  return vd::is_file(vd::join_path(dir, "config.json")) ? dir : ".";
}

std::string json_str(const std::string& s) {
  std::string o = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') o += '\\', o += static_cast<char>(c);
    else if (c < 0x20) { char u[8]; std::snprintf(u, sizeof(u), "\\u%04x", c); o += u; }
    else o += static_cast<char>(c);
  }
  return o + "\"";
}

std::string num(double v, int digits = 6) {
  if (!std::isfinite(v)) return "null";
  std::ostringstream os;
  os.precision(digits);
  os << v;
  return os.str();
}

// Scores for display: softmax of logits unless the graph already ends in one.
std::vector<double> scores_of(const std::vector<float>& out, bool probabilities) {
  std::vector<double> s(out.begin(), out.end());
  if (probabilities || s.empty()) return s;
  const double mx = *std::max_element(s.begin(), s.end());
  double sum = 0;
  for (double& v : s) sum += (v = std::exp(v - mx));
  for (double& v : s) v /= sum;
  return s;
}

// The k best classes, ties to the lower class id (as vitdeploy's topk).
std::vector<int> top_ids(const std::vector<double>& s, int k) {
  std::vector<int> ids(s.size());
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int>(i);
  std::stable_sort(ids.begin(), ids.end(), [&](int a, int b) { return s[a] > s[b]; });
  ids.resize(std::min<size_t>(ids.size(), static_cast<size_t>(k)));
  return ids;
}

std::string label_of(const std::vector<std::string>& labels, int id) {
  return id < static_cast<int>(labels.size()) ? labels[id] : std::to_string(id);
}

int predict(const Args& a, const vd::Config& cfg, const std::string& bundle) {
  const std::vector<std::string> labels = vd::read_labels(vd::join_path(bundle, "labels.txt"));
  // every image is decoded first: a bad one fails before the model is loaded
  std::vector<std::vector<float>> inputs;
  for (const std::string& img : a.images) inputs.push_back(vd::preprocess_image(img, cfg.pre));
  if (a.preprocess_only) {  // the tests compare preprocessing under configs the model cannot take
    std::vector<float> all;
    for (const std::vector<float>& v : inputs) all.insert(all.end(), v.begin(), v.end());
    if (!a.dump_input.empty()) vd::write_floats(a.dump_input, all);
    std::printf("%zu image(s) preprocessed to 3x%dx%d\n", inputs.size(), cfg.pre.crop_size,
                cfg.pre.crop_size);
    return 0;
  }
  vd::Model model(vd::join_path(bundle, "model.nb"), a.threads, a.power_mode, cfg.num_classes);
  for (int i = 0; i < a.warmup; ++i) model.run(inputs[0], cfg.input_shape);
  const int k = a.topk ? a.topk : cfg.topk;
  std::vector<float> all_in, all_out;
  std::ostringstream js;
  double total = 0, best = std::numeric_limits<double>::infinity();
  if (!a.json)
    std::cout << "model " << cfg.model << " (" << cfg.target << "), threads " << a.threads
              << ", power mode " << a.power_mode << "\n";
  for (size_t n = 0; n < inputs.size(); ++n) {
    std::vector<float> out;
    double sum = 0, mn = std::numeric_limits<double>::infinity(), ms = 0;
    for (int r = 0; r < a.repeats; ++r) {
      out = model.run(inputs[n], cfg.input_shape, &ms);
      sum += ms;
      mn = std::min(mn, ms);
    }
    total += sum / a.repeats;
    best = std::min(best, mn);
    all_in.insert(all_in.end(), inputs[n].begin(), inputs[n].end());
    all_out.insert(all_out.end(), out.begin(), out.end());
    const std::vector<double> s = scores_of(out, cfg.outputs_probabilities != 0);
    const std::vector<int> ids = top_ids(s, k);
    if (a.json) {
      js << (n ? ", " : "") << "{\"image\": " << json_str(a.images[n]) << ", \"top\": [";
      for (size_t j = 0; j < ids.size(); ++j)
        js << (j ? ", " : "") << "{\"class_id\": " << ids[j] << ", \"label\": "
           << json_str(label_of(labels, ids[j])) << ", \"score\": " << num(s[ids[j]], 9) << "}";
      js << "], \"avg_ms\": " << num(sum / a.repeats) << ", \"min_ms\": " << num(mn) << "}";
    } else {
      std::cout << a.images[n] << "\n";
      for (size_t j = 0; j < ids.size(); ++j)
        std::printf("  %zu. %.4f  %s (class %d)\n", j + 1, s[ids[j]],
                    label_of(labels, ids[j]).c_str(), ids[j]);
      std::printf("  time: avg %.3f ms, min %.3f ms over %d runs\n", sum / a.repeats, mn,
                  a.repeats);
      std::fflush(stdout);
    }
  }
  const double avg = total / inputs.size();
  if (a.json)
    std::cout << "{\"model\": " << json_str(cfg.model) << ", \"target\": " << json_str(cfg.target)
              << ", \"threads\": " << a.threads << ", \"power_mode\": " << a.power_mode
              << ", \"warmup\": " << a.warmup << ", \"repeats\": " << a.repeats
              << ", \"results\": [" << js.str() << "], \"avg_ms\": " << num(avg)
              << ", \"min_ms\": " << num(best) << "}\n";
  else
    std::printf("%zu image(s): avg %.3f ms, min %.3f ms (warmup %d, repeats %d)\n",
                inputs.size(), avg, best, a.warmup, a.repeats);
  if (!a.dump_input.empty()) vd::write_floats(a.dump_input, all_in);
  if (!a.dump_output.empty()) vd::write_floats(a.dump_output, all_out);
  return 0;
}

int argmax(const float* v, size_t n) {
  return static_cast<int>(std::max_element(v, v + n) - v);
}

int selfcheck(const Args& a, const vd::Config& cfg, const std::string& bundle) {
  if (!cfg.has_selfcheck) throw vd::Error("config.json has no selfcheck section");
  const vd::Selfcheck& sc = cfg.selfcheck;
  const size_t n = static_cast<size_t>(sc.count), c = static_cast<size_t>(cfg.num_classes);
  const size_t per = 3 * static_cast<size_t>(cfg.input_shape[2] * cfg.input_shape[3]);
  const size_t plane = per / 3;
  if (n == 0) throw vd::Error("config.json selfcheck lists no images");
  const std::vector<float> ref_in = vd::read_floats(vd::join_path(bundle, sc.inputs), n * per);
  const std::vector<float> ref_out = vd::read_floats(vd::join_path(bundle, sc.outputs), n * c);
  vd::Model model(vd::join_path(bundle, "model.nb"), a.threads, a.power_mode, cfg.num_classes);
  std::string failure;  // the first bound missed, naming the image
  auto fail = [&](const std::string& why) { if (failure.empty()) failure = why; };
  double worst_frac = 1, worst_cos = 1, worst_abs = 0;
  size_t agree = 0;
  std::string first_disagreement;
  std::ostringstream js;
  for (size_t i = 0; i < n; ++i) {
    const std::string& name = sc.images[i];
    const std::vector<float> mine = vd::preprocess_image(vd::join_path(bundle, name), cfg.pre);
    const float* ref = &ref_in[i * per];
    size_t within = 0;
    double max_px = 0;
    for (size_t j = 0; j < per; ++j) {
      // pixel units: the difference of normalized values times that channel's std
      const double d = std::fabs(double(mine[j]) - ref[j]) * cfg.pre.std[j / plane];
      max_px = std::max(max_px, d);
      within += d <= sc.pixel_tolerance + 1e-6;  // float32 noise of one level: ~1e-7
    }
    const double frac = double(within) / per;
    worst_frac = std::min(worst_frac, frac);
    if (frac < sc.pixel_min_fraction)
      fail(name + ": preprocessing within pixel_tolerance " + num(sc.pixel_tolerance) +
           " on " + num(frac) + " of values < pixel_min_fraction " + num(sc.pixel_min_fraction));
    const std::vector<float> out(model.run(std::vector<float>(ref, ref + per), cfg.input_shape));
    const float* want = &ref_out[i * c];
    double dot = 0, na = 0, nb = 0, mx = 0;
    for (size_t j = 0; j < c; ++j) {
      dot += double(out[j]) * want[j];
      na += double(out[j]) * out[j];
      nb += double(want[j]) * want[j];
      mx = std::max(mx, std::fabs(double(out[j]) - want[j]));
    }
    const double cosine = (na == 0 && nb == 0) ? 1.0 : (na == 0 || nb == 0) ? 0.0
                                                 : dot / std::sqrt(na * nb);
    worst_cos = std::min(worst_cos, cosine);
    worst_abs = std::max(worst_abs, mx);
    const int got = argmax(out.data(), c), ref_top = argmax(want, c);
    if (got == ref_top) ++agree;
    else if (first_disagreement.empty())
      first_disagreement = name + ": class " + std::to_string(got) + " vs reference " +
                           std::to_string(ref_top);
    if (!(cosine >= sc.min_cosine))
      fail(name + ": cosine " + num(cosine, 9) + " < min_cosine " + num(sc.min_cosine, 9));
    if (sc.max_abs >= 0 && !(mx <= sc.max_abs))
      fail(name + ": max |diff| " + num(mx) + " > max_abs " + num(sc.max_abs));
    if (a.json)
      js << (i ? ", " : "") << "{\"image\": " << json_str(name) << ", \"pixel_fraction\": "
         << num(frac, 9) << ", \"max_pixel_diff\": " << num(max_px) << ", \"cosine\": "
         << num(cosine, 12) << ", \"max_abs\": " << num(mx) << ", \"top1\": " << got
         << ", \"reference_top1\": " << ref_top << "}";
    else
      std::printf("%s: pixels within %.6g on %.4f%% (max %.6g), cosine %.9f, max |diff| %.6g, "
                  "top-1 %d (reference %d)\n", name.c_str(), sc.pixel_tolerance, 100 * frac,
                  max_px, cosine, mx, got, ref_top);
  }
  const double agreement = double(agree) / n;
  if (agreement < sc.min_top1_agreement)
    fail("top-1 agreement " + num(agreement) + " < min_top1_agreement " +
         num(sc.min_top1_agreement) + " (first disagreement: " + first_disagreement + ")");
  if (a.json)
    std::cout << "{\"selfcheck\": " << json_str(failure.empty() ? "passed" : "failed")
              << ", \"images\": [" << js.str() << "], \"min_pixel_fraction\": "
              << num(worst_frac, 9) << ", \"min_cosine\": " << num(worst_cos, 12)
              << ", \"max_abs\": " << num(worst_abs) << ", \"top1_agreement\": " << num(agreement)
              << (failure.empty() ? "" : ", \"failure\": " + json_str(failure)) << "}\n";
  else
    std::printf("selfcheck %s: %zu images, min pixel fraction %.6f, min cosine %.9f, "
                "max |diff| %.6g, top-1 agreement %.4f\n", failure.empty() ? "passed" : "FAILED",
                n, worst_frac, worst_cos, worst_abs, agreement);
  std::fflush(stdout);
  if (failure.empty()) return 0;
  std::fprintf(stderr, "selfcheck failed: %s\n", failure.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Args a = parse(argc, argv);
    const std::string bundle = a.bundle.empty() ? default_bundle(argv[0]) : a.bundle;
    const vd::Config cfg = vd::load_config(bundle);
    return a.selfcheck ? selfcheck(a, cfg, bundle) : predict(a, cfg, bundle);
  } catch (const vd::Error& e) {
    std::fprintf(stderr, "error: %s\n", vd::one_line(e.what()).c_str());
  } catch (const cv::Exception& e) {
    std::fprintf(stderr, "error: OpenCV: %s\n", vd::one_line(e.err).c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", vd::one_line(e.what()).c_str());
  }
  return 1;
}
