"""Log streams: where a stream's events go (destinations) and the sinks that send them."""
