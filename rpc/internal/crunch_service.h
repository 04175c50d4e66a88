// CrunchService: crunch.v1.Crunch as crunchd serves it, with gRPC's async API.
//
// Like the generated Crunch::AsyncService, except that Run, Submit,
// RunStream and RunBatches are "raw": gRPC hands over each request's bytes (a
// grpc::ByteBuffer of the slices it received) and crunchd decodes them itself
// (task_request_decoder.h), so that a large payload is copied once into a
// string sized up front instead of growing slice by slice inside protobuf's
// parser, and a payload over [limits] max_payload_bytes is not copied at all.
// Their replies are serialized by UnaryCall and StreamCall.

#ifndef CRUNCH_RPC_INTERNAL_CRUNCH_SERVICE_H_
#define CRUNCH_RPC_INTERNAL_CRUNCH_SERVICE_H_

#include "crunch/v1/crunch.grpc.pb.h"

namespace crunch::rpc::internal {

using Crunch = crunch::v1::Crunch;
using CrunchService = Crunch::WithRawMethod_Run<Crunch::WithRawMethod_Submit<
    Crunch::WithAsyncMethod_Wait<Crunch::WithAsyncMethod_Cancel<Crunch::WithRawMethod_RunStream<
        Crunch::WithRawMethod_RunBatches<Crunch::WithAsyncMethod_ListKinds<
            Crunch::WithAsyncMethod_Status<Crunch::Service>>>>>>>>;

}  // namespace crunch::rpc::internal

#endif  // CRUNCH_RPC_INTERNAL_CRUNCH_SERVICE_H_
