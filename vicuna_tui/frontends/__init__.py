"""Line-based front ends: simple (FastChat-compatible), pipe, one-shot and rich."""
