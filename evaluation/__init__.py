"""What the tests and the benchmarks share: real speech and its scoring, workloads, fault
drivers (kill a node, fail Redis over) and the servers they need (S3, HTTP).

Not part of the product: the worker and the producer never import it. Tests assert with it;
benchmarks print figures with it; neither imports the other.
"""
