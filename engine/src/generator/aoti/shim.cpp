// The C side of cuecast's `aoti` runtime: tch binds libtorch's tensor API but not
// AOTInductor's package loader, so this file wraps the few calls cuecast needs in a C ABI.
// Tensors cross as `at::Tensor*`, which is what tch's `Tensor` holds. No C++ exception
// crosses the boundary: each call returns null or false and fills `err` instead.

#include <torch/csrc/inductor/aoti_package/model_package_loader.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

namespace {

void set_error(char* err, size_t len, const std::string& message) {
  if (err == nullptr || len == 0) return;
  size_t n = message.size() < len - 1 ? message.size() : len - 1;
  std::memcpy(err, message.data(), n);
  err[n] = '\0';
}

// AOTInductor checks each input's dtype, shape, strides and device against the ones it
// was compiled for only when AOTI_RUNTIME_CHECK_INPUTS is set (and not "0"), as each
// compiled model reads it on its first run. Without the check, a tensor of the wrong
// shape is read out of bounds. cuecast sets it, whatever the environment said, once,
// before its first package loads. (setenv beside another thread's getenv is a race in
// glibc before 2.40; this runs once, on the thread loading the model, before any graph.)
void check_inputs_always() {
  static std::once_flag once;
  std::call_once(once, [] { setenv("AOTI_RUNTIME_CHECK_INPUTS", "1", 1); });
}

}  // namespace

extern "C" {

void* cuecast_aoti_load(const char* path, const char* model, int device_index,
                        char* err, size_t err_len) {
  try {
    check_inputs_always();
    return new torch::inductor::AOTIModelPackageLoader(
        path, model, /*run_single_threaded=*/false, /*num_runners=*/1,
        static_cast<c10::DeviceIndex>(device_index));
  } catch (const std::exception& e) {
    set_error(err, err_len, e.what());
  } catch (...) {
    set_error(err, err_len, "unknown error");
  }
  return nullptr;
}

void cuecast_aoti_free(void* loader) {
  delete static_cast<torch::inductor::AOTIModelPackageLoader*>(loader);
}

// The package's metadata as "key=value\n" lines, into `out` (truncated to `len`);
// returns the length it needed.
size_t cuecast_aoti_metadata(void* loader, char* out, size_t len) {
  try {
    auto* l = static_cast<torch::inductor::AOTIModelPackageLoader*>(loader);
    std::string text;
    for (const auto& kv : l->get_metadata()) {
      text += kv.first + "=" + kv.second + "\n";
    }
    set_error(out, len, text);
    return text.size();
  } catch (...) {
    set_error(out, len, "");
    return 0;
  }
}

// Runs the model on `n_in` tensors. On success, returns true and writes the number of
// outputs to `n_out` and up to `max_out` new tensors to `outputs` (the caller owns them);
// more outputs than `max_out` is reported by `n_out` and nothing is written.
bool cuecast_aoti_run(void* loader, at::Tensor** inputs, size_t n_in, at::Tensor** outputs,
                      size_t max_out, size_t* n_out, char* err, size_t err_len) {
  try {
    auto* l = static_cast<torch::inductor::AOTIModelPackageLoader*>(loader);
    std::vector<at::Tensor> in;
    in.reserve(n_in);
    for (size_t i = 0; i < n_in; i++) in.push_back(*inputs[i]);
    std::vector<at::Tensor> out = l->run(in);
    *n_out = out.size();
    if (out.size() > max_out) return true;
    for (size_t i = 0; i < out.size(); i++) outputs[i] = new at::Tensor(std::move(out[i]));
    return true;
  } catch (const std::exception& e) {
    set_error(err, err_len, e.what());
  } catch (...) {
    set_error(err, err_len, "unknown error");
  }
  return false;
}

}  // extern "C"
