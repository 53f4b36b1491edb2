"""Issue 6: the job-scoped runtime, its cgroup preflight and placement, bypass4netns."""
