import sys; sys.path.insert(0, "."); sys.path.insert(0, "models/captioner/_scratch")
import synth_head as s
from pathlib import Path
from multiprocessing import Pool
jobs = [("train2000", 2000, 0, 0.1), ("held600", 600, 99, 0.5), ("train3000", 3000, 0, 0.1), ("train4000", 4000, 0, 0.1)]
def run(j): s.generate(Path("/tmp/cap") / j[0], count=j[1], seed=j[2], low_light_fraction=j[3])
with Pool(4) as p: p.map(run, jobs)
