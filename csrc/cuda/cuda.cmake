# The optional CUDA module `_cuda` (included from CMakeLists.txt once a CUDA compiler is enabled).
# Kernels and launch code in .cu files, pybind11 only in bindings_cuda.cpp; the static CUDA runtime
# keeps libcudart out of the import-time dependencies, so the module imports without a GPU.
file(GLOB CLIPCOV_CUDA_SOURCES CONFIGURE_DEPENDS "${CMAKE_CURRENT_LIST_DIR}/*.cu")
pybind11_add_module(_cuda ${CLIPCOV_CUDA_SOURCES} "${CMAKE_CURRENT_LIST_DIR}/bindings_cuda.cpp")
target_include_directories(_cuda PRIVATE "${CMAKE_CURRENT_SOURCE_DIR}/csrc")
target_link_libraries(_cuda PRIVATE CUDA::cudart_static)
target_compile_options(_cuda PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-O3 --expt-relaxed-constexpr -lineinfo>)
set_target_properties(_cuda PROPERTIES CUDA_STANDARD 17 CUDA_STANDARD_REQUIRED ON)
install(TARGETS _cuda LIBRARY DESTINATION clipcov_fast)
message(STATUS "clipcov_fast: building the CUDA module for architectures ${CMAKE_CUDA_ARCHITECTURES}")
