import json, os, subprocess, sys, queue
from concurrent.futures import ThreadPoolExecutor
configs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
par = int(sys.argv[2]); first = int(sys.argv[3]) if len(sys.argv) > 3 else 0
out = os.environ["OUT"]
cores = queue.Queue()
for k in range(par): cores.put(f"{first + 2*k},{first + 2*k + 1}")
def run(i_c):
    i, c = i_c
    cs = cores.get()
    env = dict(os.environ, THREADS=str(c.pop("_threads", 2)), OUTDIR=f"/tmp/cap/out{i}", SEED=str(c.pop("_seed", 0)), TRAIN=c.pop("_train", "/tmp/cap/train2000"), PYTHONUNBUFFERED="1")
    r = subprocess.run(["taskset", "-c", cs, sys.executable, "models/captioner/_scratch/exp.py", json.dumps(c)], env=env, capture_output=True, text=True)
    cores.put(cs)
    lines = [l for l in r.stdout.splitlines() if l.startswith("RESULT")]
    res = (lines[0] if lines else "FAIL " + json.dumps(c) + " " + r.stderr[-800:]) + f" seed={env['SEED']} train={env['TRAIN']}"
    with open(f"{out}/results.txt", "a") as f: f.write(res + "\n")
    print(res, flush=True)
with ThreadPoolExecutor(par) as ex: list(ex.map(run, enumerate(configs)))
