// ThreadSanitizer builds only: tells TSan about the ordering gRPC's completion
// queues provide, which it cannot see in Debian's uninstrumented gRPC.
//
// gRPC's C++ API is header code, so it is compiled (and instrumented) into
// crunchd and the tests, while the core it calls is not. A batch of operations
// (a CallOpSet) is filled on one thread before grpc_call_start_batch and read
// back on the completion-queue thread after grpc_completion_queue_next returns
// its tag; the core orders the two with its own atomics and futexes, which TSan
// does not observe, so every RPC looked like a data race. These definitions
// interpose the few C functions that take or return a tag (the executable's
// symbols come before libgrpc's) and add the edge gRPC guarantees: everything
// before a tag is handed to the core happens before the thread that gets the
// tag back. They add no other ordering, so a race in crunchd's own code still
// shows. Accesses made inside the uninstrumented libraries themselves are left
// out by TSAN_OPTIONS=ignore_noninstrumented_modules=1 (the tsan test preset).

#include <dlfcn.h>
#include <grpc/grpc.h>
#include <sanitizer/tsan_interface.h>

#include <cstdio>
#include <cstdlib>

namespace {

// The definition this file interposes (libgrpc's), looked up once.
template <typename Fn>
Fn* Real(Fn*, const char* name) {
  void* fn = ::dlsym(RTLD_NEXT, name);
  if (fn == nullptr) {
    std::fprintf(stderr, "tsan_grpc_edges: %s not found after this executable: %s\n", name,
                 ::dlerror());
    std::abort();
  }
  return reinterpret_cast<Fn*>(fn);
}

// A tag goes to the core: what this thread did so far must be visible to the
// thread that gets the tag back.
void Handed(void* tag) { __tsan_release(tag); }

grpc_event Returned(grpc_event event) {
  if (event.type == GRPC_OP_COMPLETE) __tsan_acquire(event.tag);
  return event;
}

}  // namespace

extern "C" {

grpc_call_error grpc_call_start_batch(grpc_call* call, const grpc_op* ops, size_t nops, void* tag,
                                      void* reserved) {
  static const auto real = Real(&grpc_call_start_batch, "grpc_call_start_batch");
  Handed(tag);
  return real(call, ops, nops, tag, reserved);
}

grpc_call_error grpc_server_request_call(grpc_server* server, grpc_call** call,
                                         grpc_call_details* details,
                                         grpc_metadata_array* request_metadata,
                                         grpc_completion_queue* cq_bound_to_call,
                                         grpc_completion_queue* cq_for_notification,
                                         void* tag_new) {
  static const auto real = Real(&grpc_server_request_call, "grpc_server_request_call");
  Handed(tag_new);
  return real(server, call, details, request_metadata, cq_bound_to_call, cq_for_notification,
              tag_new);
}

grpc_call_error grpc_server_request_registered_call(grpc_server* server, void* registered_method,
                                                    grpc_call** call, gpr_timespec* deadline,
                                                    grpc_metadata_array* request_metadata,
                                                    grpc_byte_buffer** optional_payload,
                                                    grpc_completion_queue* cq_bound_to_call,
                                                    grpc_completion_queue* cq_for_notification,
                                                    void* tag_new) {
  static const auto real =
      Real(&grpc_server_request_registered_call, "grpc_server_request_registered_call");
  Handed(tag_new);
  return real(server, registered_method, call, deadline, request_metadata, optional_payload,
              cq_bound_to_call, cq_for_notification, tag_new);
}

grpc_event grpc_completion_queue_next(grpc_completion_queue* cq, gpr_timespec deadline,
                                      void* reserved) {
  static const auto real = Real(&grpc_completion_queue_next, "grpc_completion_queue_next");
  return Returned(real(cq, deadline, reserved));
}

grpc_event grpc_completion_queue_pluck(grpc_completion_queue* cq, void* tag, gpr_timespec deadline,
                                       void* reserved) {
  static const auto real = Real(&grpc_completion_queue_pluck, "grpc_completion_queue_pluck");
  return Returned(real(cq, tag, deadline, reserved));
}

}  // extern "C"
