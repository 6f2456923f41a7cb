"""Messages, wire codec, node runtime, transport and sources: the layer everything runs on."""
