"""python -m bench.faults kill|redis|shutdown|soak|node-loss|preempt|failover, and on RabbitMQ
rabbitmq-node-loss|rabbitmq-leader (evaluation.faults, evaluation.rabbitmq_faults)."""

from evaluation.faults import main

if __name__ == "__main__":
    raise SystemExit(main())
