package io.dtmd.client;

import io.grpc.MethodDescriptor;
import io.grpc.Status;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;

/** Passes message bytes through untouched: branch calls carry the payload as it is. */
final class RawMarshaller implements MethodDescriptor.Marshaller<byte[]> {
  static final RawMarshaller INSTANCE = new RawMarshaller();

  @Override
  public InputStream stream(byte[] value) {
    return new ByteArrayInputStream(value);
  }

  @Override
  public byte[] parse(InputStream stream) {
    try {
      return stream.readAllBytes();
    } catch (IOException e) {
      throw Status.INTERNAL.withDescription("reading a message: " + e).withCause(e).asRuntimeException();
    }
  }
}
