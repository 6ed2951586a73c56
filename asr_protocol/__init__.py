"""What the producer and the worker share, and neither owns: the contract between them.

Both sides import this package; it imports neither (a unit test walks every module's
imports to keep it so). The producer reaches the worker's tasks by their names only,
so a service that enqueues jobs installs ``celery[redis]``, ``producer`` and this
package, and nothing of the model.

- :mod:`asr_protocol.names`: task and queue names
- :mod:`asr_protocol.states`: job states
- :mod:`asr_protocol.options`: the names of a job's options
- :mod:`asr_protocol.records`: the result records (TypedDicts), fan-out pieces included
- :mod:`asr_protocol.redact`: URLs as they may be shown (no signature, no password)
- :mod:`asr_protocol.formats`: a result rendered as json, txt, srt, vtt, tsv or rttm
- :mod:`asr_protocol.cancel`: both halves of the fan-out cancel protocol (redis-py only)
- :mod:`asr_protocol.queues`: the job queues both sides declare (quorum queues on RabbitMQ)

The submodules are not imported here: each side loads what it uses.
"""
