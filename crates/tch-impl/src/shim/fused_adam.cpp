// The tuned profile's optimiser step: libtorch's fused Adam (`at::_fused_adam_`, what PyTorch's
// `torch.optim.Adam(fused=True)` calls), which tch does not bind. Each function returns NULL, or an
// error message that the caller frees with lc_free_error.

#include <ATen/ATen.h>
#include <ATen/ops/_foreach_add.h>
#include <ATen/ops/_fused_adam.h>
#include <c10/core/GradMode.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <vector>

namespace {

char *error_text(const char *what) { return strdup(what ? what : "unknown error"); }

std::vector<at::Tensor> gather(at::Tensor **tensors, int n) {
  std::vector<at::Tensor> out;
  out.reserve(n);
  for (int i = 0; i < n; i++) out.push_back(*tensors[i]);
  return out;
}

}  // namespace

extern "C" {

void lc_free_error(char *error) { free(error); }

// One Adam step over `n` parameters with their gradients (each parameter's `.grad()`), first and
// second moments and step counts (0-d float32 tensors on the parameters' device, which the kernel
// reads there: nothing about the step lives on the host, so the step can be captured in a CUDA
// graph). The counts are incremented first, as PyTorch's Adam does before its fused kernel.
char *lc_fused_adam(at::Tensor **params, at::Tensor **exp_avgs, at::Tensor **exp_avg_sqs,
                    at::Tensor **steps, int n, double lr, double beta1, double beta2,
                    double weight_decay, double eps) {
  try {
    c10::NoGradGuard no_grad;
    std::vector<at::Tensor> p = gather(params, n);
    std::vector<at::Tensor> grads;
    grads.reserve(n);
    for (const auto &t : p) {
      if (!t.grad().defined()) return error_text("fused Adam: a parameter has no gradient");
      grads.push_back(t.grad());
    }
    std::vector<at::Tensor> s = gather(steps, n);
    at::_foreach_add_(s, 1);
    at::_fused_adam_(p, grads, gather(exp_avgs, n), gather(exp_avg_sqs, n), {}, s, lr, beta1, beta2,
                     weight_decay, eps, /*amsgrad=*/false, /*maximize=*/false);
    return nullptr;
  } catch (const std::exception &e) {
    return error_text(e.what());
  }
}

}  // extern "C"
