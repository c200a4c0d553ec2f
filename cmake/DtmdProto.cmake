# dtmd_generate_proto(OUT_SRCS PROTO_FILES... [GRPC])
# Generates C++ (and, with GRPC, gRPC service) sources for .proto files
# relative to ${PROJECT_SOURCE_DIR}/proto into ${PROJECT_BINARY_DIR}/gen.
set(DTMD_GEN_DIR ${PROJECT_BINARY_DIR}/gen)
file(MAKE_DIRECTORY ${DTMD_GEN_DIR})
get_target_property(DTMD_GRPC_CPP_PLUGIN gRPC::grpc_cpp_plugin LOCATION)

function(dtmd_generate_proto out_var)
  cmake_parse_arguments(ARG "GRPC" "" "" ${ARGN})
  set(srcs)
  foreach(rel ${ARG_UNPARSED_ARGUMENTS})
    get_filename_component(dir ${rel} DIRECTORY)
    get_filename_component(stem ${rel} NAME_WE)
    if(dir)
      set(base ${DTMD_GEN_DIR}/${dir}/${stem})
    else()
      set(base ${DTMD_GEN_DIR}/${stem})
    endif()
    set(outs ${base}.pb.cc ${base}.pb.h)
    set(args --cpp_out=${DTMD_GEN_DIR})
    if(ARG_GRPC)
      list(APPEND outs ${base}.grpc.pb.cc ${base}.grpc.pb.h)
      list(APPEND args --grpc_out=${DTMD_GEN_DIR}
           --plugin=protoc-gen-grpc=${DTMD_GRPC_CPP_PLUGIN})
    endif()
    add_custom_command(
      OUTPUT ${outs}
      COMMAND ${Protobuf_PROTOC_EXECUTABLE} ${args}
              -I${PROJECT_SOURCE_DIR}/proto ${rel}
      DEPENDS ${PROJECT_SOURCE_DIR}/proto/${rel}
      WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}/proto
      COMMENT "protoc ${rel}")
    list(APPEND srcs ${outs})
  endforeach()
  set(${out_var} ${srcs} PARENT_SCOPE)
endfunction()
