// CUDA graphs for tch, which does not bind them: libtorch's `at::cuda::CUDAGraph`, captured on a
// side stream from libtorch's pool as PyTorch's `torch.cuda.graph` does. A `Capture` holds the
// graph, the side stream and the stream that was current before it. The thread's current stream is
// switched for the whole of a warm-up step or a capture (enter ... exit), so that the tch calls made
// in between, the backward pass included, run on the side stream. Each function returns NULL, or an
// error message that the caller frees with lc_free_error (fused_adam.cpp).

#include <ATen/cuda/CUDAGraph.h>
#include <c10/core/Event.h>
#include <c10/cuda/CUDAStream.h>

#include <cstring>
#include <exception>
#include <optional>

namespace {

char *graph_error(const char *what) { return strdup(what ? what : "unknown error"); }

}  // namespace

struct Capture {
  at::cuda::CUDAGraph graph;
  c10::cuda::CUDAStream side;
  std::optional<c10::cuda::CUDAStream> previous;
  bool captured = false;

  Capture() : side(c10::cuda::getStreamFromPool()) {}
};

extern "C" {

char *lc_capture_new(Capture **out) {
  try {
    *out = new Capture();
    return nullptr;
  } catch (const std::exception &e) {
    *out = nullptr;
    return graph_error(e.what());
  }
}

void lc_capture_free(Capture *c) { delete c; }

// Makes the side stream current, after it has waited for what the current stream queued.
char *lc_capture_enter(Capture *c) {
  try {
    if (c->previous) return graph_error("CUDA graph: the side stream is already current");
    auto current = c10::cuda::getCurrentCUDAStream();
    c10::Event ready(c10::DeviceType::CUDA);
    ready.record(current);
    ready.block(c->side);
    c->previous = current;
    c10::cuda::setCurrentCUDAStream(c->side);
    return nullptr;
  } catch (const std::exception &e) {
    return graph_error(e.what());
  }
}

// Makes the previous stream current again, waiting for what the side stream queued.
char *lc_capture_exit(Capture *c) {
  try {
    if (!c->previous) return graph_error("CUDA graph: the side stream is not current");
    c10::Event done(c10::DeviceType::CUDA);
    done.record(c->side);
    done.block(*c->previous);
    c10::cuda::setCurrentCUDAStream(*c->previous);
    c->previous.reset();
    return nullptr;
  } catch (const std::exception &e) {
    return graph_error(e.what());
  }
}

// Starts recording on the (current) side stream: nothing queued until lc_capture_end runs.
char *lc_capture_begin(Capture *c) {
  try {
    if (c->captured) return graph_error("CUDA graph: already captured");
    c->graph.capture_begin();
    return nullptr;
  } catch (const std::exception &e) {
    return graph_error(e.what());
  }
}

char *lc_capture_end(Capture *c) {
  try {
    c->graph.capture_end();
    c->captured = true;
    return nullptr;
  } catch (const std::exception &e) {
    return graph_error(e.what());
  }
}

// Queues the captured work once on the current stream.
char *lc_capture_replay(Capture *c) {
  try {
    if (!c->captured) return graph_error("CUDA graph: nothing captured");
    c->graph.replay();
    return nullptr;
  } catch (const std::exception &e) {
    return graph_error(e.what());
  }
}

}  // extern "C"
