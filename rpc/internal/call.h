// Call: what a completion-queue tag points to. A call object owns itself; the
// completion-queue thread calls Proceed() with each of its events, and the call
// deletes itself after its last one.

#ifndef CRUNCH_RPC_INTERNAL_CALL_H_
#define CRUNCH_RPC_INTERNAL_CALL_H_

namespace crunch::rpc::internal {

class Tag {
 public:
  virtual void Proceed(bool ok) = 0;

 protected:
  ~Tag() = default;
};

}  // namespace crunch::rpc::internal

#endif  // CRUNCH_RPC_INTERNAL_CALL_H_
