# Processes on loopback: the coordinator and workers started as separate programs.

sweep_add_test(fault_tolerance_test
  SOURCES fault_tolerance_test.cc
  LIBRARIES sweep_test_support
  LABELS integration)
sweep_add_test(end_to_end_test
  SOURCES end_to_end_test.cc
  LIBRARIES sweep_test_support
  LABELS integration)
sweep_add_test(group_lease_test
  SOURCES group_lease_test.cc
  LIBRARIES sweep_test_support
  LABELS integration)
# The integration tests run the programs they test.
add_dependencies(fault_tolerance_test sweep-coordinator sweep-worker)
add_dependencies(group_lease_test sweep-coordinator)
add_dependencies(end_to_end_test sweep-coordinator sweep-worker)
# A client for the server reflection protocol, generated from the subset the tests use.
set(reflection_generated_dir "${CMAKE_CURRENT_BINARY_DIR}/generated")
set(reflection_sources
    "${reflection_generated_dir}/reflection_client.pb.cc"
    "${reflection_generated_dir}/reflection_client.grpc.pb.cc")
get_target_property(grpc_cpp_plugin_path gRPC::grpc_cpp_plugin LOCATION)
add_custom_command(
  OUTPUT ${reflection_sources}
  COMMAND ${CMAKE_COMMAND} -E make_directory "${reflection_generated_dir}"
  COMMAND protobuf::protoc --proto_path "${CMAKE_CURRENT_SOURCE_DIR}/proto"
    --cpp_out "${reflection_generated_dir}" --grpc_out "${reflection_generated_dir}"
    --plugin=protoc-gen-grpc=${grpc_cpp_plugin_path}
    "${CMAKE_CURRENT_SOURCE_DIR}/proto/reflection_client.proto"
  DEPENDS "${CMAKE_CURRENT_SOURCE_DIR}/proto/reflection_client.proto")

sweep_add_test(service_endpoints_test
  SOURCES service_endpoints_test.cc ${reflection_sources}
  LIBRARIES sweep_test_support
  LABELS integration)
target_include_directories(service_endpoints_test PRIVATE "${reflection_generated_dir}")
add_dependencies(service_endpoints_test sweep-coordinator sweep-health-probe)
sweep_add_test(early_stopping_test
  SOURCES early_stopping_test.cc
  LIBRARIES sweep_test_support
  LABELS integration)
add_dependencies(early_stopping_test sweep-coordinator sweep-worker)
