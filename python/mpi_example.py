#!/usr/bin/env python3
"""mpi_example.py - the collective hook from Python: a data-parallel search and training
run with mpi4py's Allreduce as libmpnas's all-reduce (mpnas_context_set_collective,
docs/SCALING.md), through Context.set_collective.

    mpirun -np 2 python3 python/mpi_example.py      (as root: mpirun --allow-run-as-root)

Needs mpi4py (Debian: python3-mpi4py). Every worker builds the same data and settings;
the library splits each batch among them and keeps their weights identical, which the
end of the run checks (a hash of every worker's model, gathered on rank 0)."""

import hashlib
import os
import sys

from mpi4py import MPI

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mpnas  # noqa: E402
import synthetic  # noqa: E402

COMM = MPI.COMM_WORLD


MPI_TYPES = {"f32": MPI.FLOAT, "f64": MPI.DOUBLE, "i64": MPI.INT64_T}


def allreduce(array, dtype):
    """Sum a ctypes array over every worker, in place (Context.set_collective)."""
    COMM.Allreduce(MPI.IN_PLACE, [array, MPI_TYPES[dtype]], op=MPI.SUM)


def main():
    rank, world = COMM.Get_rank(), COMM.Get_size()
    train = {d: synthetic.make(d, 600, seed=1) for d in synthetic.DOMAINS}
    test = {d: synthetic.make(d, 200, seed=1, start=100000) for d in synthetic.DOMAINS}
    with mpnas.Context(threads=1, seed=1) as ctx:
        ctx.set_collective(allreduce, rank, world)
        space = mpnas.Space(ctx, "empty").configure(stem_channels=8, stem_stride=2,
                                                     head_channels=64)
        space.add_stage(16, 2, 2, "relu", True)
        space.add_stage(24, 2, 2, "hswish", True)
        space.set_choices(-1, kernels=[3, 5], expansions=[2, 4])
        sn = mpnas.Supernet(space)
        for d in synthetic.DOMAINS:
            sn.add_domain(d, synthetic.CLASSES[d])
            sn.set_data(d, *train[d])
        sn.configure(steps=40, train_batch=16, valid_batch=32)
        sn.search()
        model = mpnas.Model.from_supernet(sn)
        sn.close()
        model.configure(steps=60, batch=16, valid_every=20)
        model.train()
        digest = hashlib.sha256(model.save_buffer()).hexdigest()[:16]
        digests = COMM.gather(digest, root=0)
        if rank == 0:
            print("%d worker(s); paths:" % world)
            for d in model.domains:
                print("  %-9s %s" % (d, model.path_string(d)))
            for d in model.domains:
                ev = model.evaluate(d, *test[d])
                print("  %-9s top-1 %.3f" % (d, ev.top1))
            same = len(set(digests)) == 1
            print("model on every worker: %s (%s)" % ("identical" if same else "DIFFERENT",
                                                     digest))
            return 0 if same else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
