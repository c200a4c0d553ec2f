# The Java client (client_stubs/java) and its example (examples/java): JUnit
# tests via Maven Surefire against a real dtmd and PostgreSQL, then the order
# flow against a real dtmd. Maven caches downloads in ~/.m2.
.PHONY: test-java
test-clients: test-java

test-java: build
	@scripts/test_java.sh $(BUILD_DIR)
