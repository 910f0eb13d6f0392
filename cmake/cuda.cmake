# CUDA: the real toolkit build (LLM_CUDA=ON, or AUTO when nvcc is found). Included once, right
# after the llm library. The CPU emulator that runs the same sources in CI is test machinery and
# lives in emu/ (emu/CMakeLists.txt); it uses the source lists set here. See docs/cuda-emulation.md.
#
# Targets (CUDA on)
#   llm_cuda_ops        kernels/*.cu + src/backend/cuda/*.cpp built by nvcc / against the real CUDA
#                       libraries; links llm_core, and llm links it (make_backend creates CudaBackend)
#   test_cuda_gpu       tests/cuda_emu's shared tests against the real runtime (label gpu)
#   test_cuda_ops_gpu   tests/cuda_ops against the real device (label gpu)
include_guard(GLOBAL)

set(LLM_CUDA_KERNEL_DIR ${PROJECT_SOURCE_DIR}/kernels)
file(GLOB LLM_CUDA_KERNEL_SOURCES CONFIGURE_DEPENDS ${LLM_CUDA_KERNEL_DIR}/*.cu)
file(GLOB LLM_CUDA_HOST_SOURCES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/src/backend/cuda/*.cpp)
# Test kernels and the tests that run unchanged on the emulator and on a GPU.
set(LLM_CUDA_TEST_KERNELS ${PROJECT_SOURCE_DIR}/tests/cuda_emu/harness_kernels.cu
                          ${PROJECT_SOURCE_DIR}/tests/cuda_emu/sample_reduce.cu)
set(LLM_CUDA_SHARED_TESTS
    ${PROJECT_SOURCE_DIR}/tests/cuda_emu/sample_reduce_test.cpp
    ${PROJECT_SOURCE_DIR}/tests/cuda_emu/warp_test.cpp
    ${PROJECT_SOURCE_DIR}/tests/cuda_emu/mma_layout_test.cpp
    ${PROJECT_SOURCE_DIR}/tests/cuda_emu/atomics_test.cpp
    ${PROJECT_SOURCE_DIR}/tests/cuda_emu/cublaslt_test.cpp)

# ---- the real CUDA build ------------------------------------------------------------------------
set(LLM_CUDA_ENABLED OFF)
if(LLM_CUDA STREQUAL "ON" OR LLM_CUDA STREQUAL "AUTO")
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    set(LLM_CUDA_ENABLED ON)
  elseif(LLM_CUDA STREQUAL "ON")
    message(FATAL_ERROR "LLM_CUDA=ON but no CUDA compiler (nvcc) was found; set CUDACXX or use LLM_CUDA=AUTO")
  endif()
elseif(NOT LLM_CUDA STREQUAL "OFF")
  message(FATAL_ERROR "LLM_CUDA is '${LLM_CUDA}', expected AUTO, ON or OFF")
endif()
message(STATUS "llm: CUDA build ${LLM_CUDA_ENABLED} (LLM_CUDA=${LLM_CUDA}); the CUDA emulator is built with the tests")

if(LLM_CUDA_ENABLED)
  # Every architecture the toolkit still builds: 70 (V100) until CUDA 12.x, then 75 and up.
  if(NOT CMAKE_CUDA_ARCHITECTURES)
    execute_process(COMMAND ${CMAKE_CUDA_COMPILER} --list-gpu-arch OUTPUT_VARIABLE llm_gpu_archs
                    ERROR_QUIET RESULT_VARIABLE llm_list_result)
    set(llm_archs 75 80 86 89 90)
    if(llm_list_result EQUAL 0 AND llm_gpu_archs MATCHES "compute_70")
      list(PREPEND llm_archs 70)
    endif()
    set(CMAKE_CUDA_ARCHITECTURES "${llm_archs}" CACHE STRING "CUDA architectures to build" FORCE)
  endif()
  enable_language(CUDA)
  # CMake 3.25 knows no C++20 flag for nvcc (3.26 does); CUDA sources follow CXX_STANDARD 20.
  if(NOT DEFINED CMAKE_CUDA20_STANDARD_COMPILE_OPTION)
    set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
    set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
  endif()
  set(CMAKE_CUDA_STANDARD 20)
  set(CMAKE_CUDA_STANDARD_REQUIRED ON)
  set(CMAKE_CUDA_EXTENSIONS OFF)
  find_package(CUDAToolkit REQUIRED)
  find_library(LLM_NCCL_LIBRARY NAMES nccl HINTS ${CUDAToolkit_LIBRARY_DIR})
  find_path(LLM_NCCL_INCLUDE nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS})
  message(STATUS "llm: CUDA ${CUDAToolkit_VERSION}, architectures ${CMAKE_CUDA_ARCHITECTURES}, NCCL ${LLM_NCCL_LIBRARY}")

  # Device and host warnings are errors; -Xptxas -v writes each kernel's registers, shared
  # memory and spills, which scripts/ptxas_report.py captures per object (as the compiler
  # launcher) and tabulates in the cuda_resources test.
  set(LLM_CUDA_FLAGS --Werror all-warnings -Xcompiler=-Wall,-Wextra,-Wshadow,-Werror -Xptxas=-v
                     --expt-relaxed-constexpr)
  set(LLM_PTXAS_LOG_DIR ${PROJECT_BINARY_DIR}/ptxas)
  find_package(Python3 REQUIRED COMPONENTS Interpreter)
  set(LLM_CUDA_LAUNCHER ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/scripts/ptxas_report.py capture
                        ${LLM_PTXAS_LOG_DIR})

  # cudart static, cuBLASLt and NCCL dynamic, never the driver (-lcuda): a binary linked with
  # libcuda does not even start on a machine without a driver.
  set(LLM_CUDA_LIBS CUDA::cudart_static CUDA::cublasLt)
  if(LLM_NCCL_LIBRARY)
    list(APPEND LLM_CUDA_LIBS ${LLM_NCCL_LIBRARY})
  endif()

  add_library(llm_cuda_ops STATIC ${LLM_CUDA_KERNEL_SOURCES} ${LLM_CUDA_HOST_SOURCES})
  target_include_directories(llm_cuda_ops PUBLIC ${PROJECT_SOURCE_DIR}/include ${LLM_CUDA_KERNEL_DIR}
                             ${PROJECT_SOURCE_DIR} PRIVATE ${PROJECT_SOURCE_DIR}/src)
  if(LLM_NCCL_INCLUDE AND LLM_NCCL_LIBRARY)
    target_include_directories(llm_cuda_ops PUBLIC ${LLM_NCCL_INCLUDE})
    target_compile_definitions(llm_cuda_ops PUBLIC LLM_HAVE_NCCL=1)
  endif()
  target_compile_options(llm_cuda_ops PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:${LLM_CUDA_FLAGS}>
                         $<$<COMPILE_LANGUAGE:CXX>:${LLM_WARNINGS}>)
  set_target_properties(llm_cuda_ops PROPERTIES CUDA_COMPILER_LAUNCHER "${LLM_CUDA_LAUNCHER}"
                        CUDA_SEPARABLE_COMPILATION OFF)
  target_link_libraries(llm_cuda_ops PUBLIC ${LLM_CUDA_LIBS} llm_core)
  # make_backend (in llm) creates the CUDA backend; the ops need only llm_core, so the links run
  # one way: llm -> llm_cuda_ops -> llm_core.
  target_link_libraries(llm PUBLIC llm_cuda_ops)
  target_compile_definitions(llm PUBLIC LLM_HAVE_CUDA=1)

  # include(CTest) comes later in the top-level file: add the tests at the end of it.
  function(_llm_cuda_real_tests)
    if(NOT BUILD_TESTING)
      return()
    endif()
    # The shared tests against the real runtime: they skip with a message when no GPU is present.
    find_package(GTest REQUIRED)
    add_executable(test_cuda_gpu ${LLM_CUDA_SHARED_TESTS} ${LLM_CUDA_TEST_KERNELS}
                   ${PROJECT_SOURCE_DIR}/tests/test_main.cpp)
    target_include_directories(test_cuda_gpu PRIVATE ${PROJECT_SOURCE_DIR}/tests ${PROJECT_SOURCE_DIR}/src)
    target_compile_options(test_cuda_gpu PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:${LLM_CUDA_FLAGS}>
                           $<$<COMPILE_LANGUAGE:CXX>:${LLM_WARNINGS}>)
    set_target_properties(test_cuda_gpu PROPERTIES CUDA_COMPILER_LAUNCHER "${LLM_CUDA_LAUNCHER}")
    target_link_libraries(test_cuda_gpu PRIVATE llm_cuda_ops GTest::gtest)
    include(GoogleTest)
    gtest_discover_tests(test_cuda_gpu DISCOVERY_TIMEOUT 60 TEST_PREFIX "gpu." PROPERTIES LABELS gpu)

    # tests/cuda_ops (every op against CpuBackend) on the real device; skipped without one.
    file(GLOB cuda_op_tests CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/tests/cuda_ops/*_test.cpp)
    add_executable(test_cuda_ops_gpu ${cuda_op_tests} ${PROJECT_SOURCE_DIR}/tests/cuda_ops/gpu_main.cpp)
    target_include_directories(test_cuda_ops_gpu PRIVATE ${PROJECT_SOURCE_DIR}/tests ${PROJECT_SOURCE_DIR}/src)
    target_compile_options(test_cuda_ops_gpu PRIVATE ${LLM_WARNINGS})
    target_link_libraries(test_cuda_ops_gpu PRIVATE llm GTest::gtest)
    gtest_discover_tests(test_cuda_ops_gpu DISCOVERY_TIMEOUT 60 TEST_PREFIX "gpu." PROPERTIES LABELS gpu)

    # Starts without a driver and reports "no device" instead of crashing: proof of no -lcuda.
    add_executable(cuda_runtime_probe ${PROJECT_SOURCE_DIR}/tests/cuda_emu/real/cuda_runtime_probe.cpp)
    target_compile_options(cuda_runtime_probe PRIVATE ${LLM_WARNINGS})
    target_link_libraries(cuda_runtime_probe PRIVATE ${LLM_CUDA_LIBS})
    if(LLM_NCCL_INCLUDE)
      target_include_directories(cuda_runtime_probe PRIVATE ${LLM_NCCL_INCLUDE})
      target_compile_definitions(cuda_runtime_probe PRIVATE LLM_HAVE_NCCL=1)
    endif()
    add_test(NAME cuda_runtime_probe COMMAND cuda_runtime_probe)

    # Registers / shared memory / spills of every kernel; fails on any spill.
    add_test(NAME cuda_resources
             COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/scripts/ptxas_report.py report ${LLM_PTXAS_LOG_DIR})
  endfunction()
  cmake_language(DEFER CALL _llm_cuda_real_tests)
endif()
