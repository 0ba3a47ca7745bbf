"""Generated stubs of goflow2's flow record (proto/attribution/goflow2/flow.proto)."""
