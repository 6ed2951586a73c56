"""What producers and workers share and neither owns: here, the job queues (:mod:`asr_protocol.queues`)."""
