# TensorBoard event files written by the coordinator: the library sweep_tensorboard and the
# C++ code generated from tensorboard_events.proto. Included from server/CMakeLists.txt.
set(tensorboard_proto "${CMAKE_CURRENT_LIST_DIR}/tensorboard_events.proto")
set(tensorboard_generated_dir "${CMAKE_CURRENT_BINARY_DIR}/tensorboard_generated")
set(tensorboard_generated_sources
    "${tensorboard_generated_dir}/server/tensorboard_events.pb.cc"
    "${tensorboard_generated_dir}/server/tensorboard_events.pb.h")

# The proto path is the repository root, so the generated header is included as
# "server/tensorboard_events.pb.h". The second path finds google/protobuf/struct.proto.
add_custom_command(
  OUTPUT ${tensorboard_generated_sources}
  COMMAND ${CMAKE_COMMAND} -E make_directory "${tensorboard_generated_dir}"
  COMMAND protobuf::protoc
    --proto_path "${PROJECT_SOURCE_DIR}"
    --proto_path "${Protobuf_INCLUDE_DIR}"
    --cpp_out "${tensorboard_generated_dir}"
    "${tensorboard_proto}"
  DEPENDS "${tensorboard_proto}"
  COMMENT "Generating C++ code from server/tensorboard_events.proto")

add_library(sweep_tensorboard "${CMAKE_CURRENT_LIST_DIR}/tensorboard.cc"
                              ${tensorboard_generated_sources})
target_include_directories(sweep_tensorboard PUBLIC "${tensorboard_generated_dir}")
target_link_libraries(sweep_tensorboard
  PUBLIC sweep_common sweep_proto protobuf::libprotobuf absl::status absl::statusor
  PRIVATE absl::strings spdlog::spdlog)
