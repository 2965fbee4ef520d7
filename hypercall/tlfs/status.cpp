#include "hypercall/tlfs/tlfs.hpp"

namespace microhv::tlfs {

const char* status_name(Status s) {
  switch (s) {
    case Status::kSuccess:
      return "SUCCESS";
    case Status::kInvalidHypercallCode:
      return "INVALID_HYPERCALL_CODE";
    case Status::kInvalidHypercallInput:
      return "INVALID_HYPERCALL_INPUT";
    case Status::kInvalidAlignment:
      return "INVALID_ALIGNMENT";
    case Status::kInvalidParameter:
      return "INVALID_PARAMETER";
    case Status::kAccessDenied:
      return "ACCESS_DENIED";
    case Status::kInvalidPartitionState:
      return "INVALID_PARTITION_STATE";
    case Status::kOperationDenied:
      return "OPERATION_DENIED";
    case Status::kInsufficientMemory:
      return "INSUFFICIENT_MEMORY";
    case Status::kInvalidPartitionId:
      return "INVALID_PARTITION_ID";
    case Status::kInvalidVpIndex:
      return "INVALID_VP_INDEX";
    case Status::kInvalidPortId:
      return "INVALID_PORT_ID";
    case Status::kInvalidConnectionId:
      return "INVALID_CONNECTION_ID";
    case Status::kInsufficientBuffers:
      return "INSUFFICIENT_BUFFERS";
    case Status::kInvalidSynicState:
      return "INVALID_SYNIC_STATE";
    case Status::kNoResources:
      return "NO_RESOURCES";
    case Status::kTimeout:
      return "TIMEOUT";
  }
  return "UNKNOWN_STATUS";
}

}  // namespace microhv::tlfs
