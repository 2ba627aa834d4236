// The CUDA runtime as the build and the machine see it (only with KFAAR_WITH_CUDA).
// None of these throws: no driver or no device reads as 0 devices.
#pragma once

#include <string>

namespace kfaar {

int cuda_device_count();
std::string cuda_device_name(int index);  // "" when the index is not a device
int cuda_runtime_version();               // e.g. 13000; 0 when unknown
int cuda_driver_version();                // 0 without a driver

}  // namespace kfaar
