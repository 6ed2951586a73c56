"""python -m bench.faults kill|redis|shutdown|soak|node-loss|preempt|failover (evaluation.faults)."""

from evaluation.faults import main

if __name__ == "__main__":
    raise SystemExit(main())
