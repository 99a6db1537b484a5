# The coordinator's Prometheus metrics: the registry and its HTTP endpoint, as the library
# sweep_metrics. Included from server/CMakeLists.txt.
#
# Debian's libcpp-httplib-dev ships httplib.h without the implementation, which is compiled
# into libcpp-httplib.so. Its pkg-config file carries the CPPHTTPLIB_* definitions the
# library was built with, and every file that includes httplib.h needs them because they
# change the layout of httplib's classes. GLOBAL lets the tests link the same target.
find_package(PkgConfig REQUIRED)
pkg_check_modules(cpp_httplib REQUIRED IMPORTED_TARGET GLOBAL cpp-httplib)

add_library(sweep_metrics "${CMAKE_CURRENT_LIST_DIR}/metrics.cc"
                          "${CMAKE_CURRENT_LIST_DIR}/metrics_http.cc")
target_include_directories(sweep_metrics PUBLIC "${PROJECT_SOURCE_DIR}")
target_link_libraries(sweep_metrics
  PUBLIC sweep_proto gRPC::grpc++ absl::status absl::statusor Threads::Threads
  PRIVATE sweep_common PkgConfig::cpp_httplib absl::strings spdlog::spdlog)
