"""Messages, wire codec, node runtime, transport, recording and file readers: the base layer."""
