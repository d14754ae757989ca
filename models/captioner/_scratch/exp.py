import sys, json, time, importlib.util, os
from pathlib import Path
import torch
torch.set_num_threads(int(os.environ.get("THREADS", "2")))
REC = Path(os.environ.get("RECIPE", "models/captioner"))
sys.path.insert(0, str(REC)); sys.path.insert(0, os.environ.get("REPO", "."))
spec = importlib.util.spec_from_file_location("captioner_recipe", REC / "captioner.py")
m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
from appliance.recipes.context import TrainContext, EvalContext
params = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
train_dir = Path(os.environ.get("TRAIN", "/tmp/cap/train2000")); held = Path(os.environ.get("HELD", "/tmp/cap/held600"))
rows = [json.loads(l) for l in open(train_dir / "metadata.jsonl")]
n = int(os.environ.get("N", len(rows))); rows = rows[:n]
hrows = [json.loads(l) for l in open(held / "metadata.jsonl")]
class R:
    def __init__(s): s.t = time.time()
    def progress(s, step, total, **k):
        if step % 50 == 0 or step == total: print(f"  {step}/{total} loss={k['loss']:.4f} t={time.time()-s.t:.0f}s", flush=True)
    def metric(s, *a, **k): pass
    def log(s, msg): print(" ", msg, flush=True)
out = Path(os.environ.get("OUTDIR", "/tmp/cap/out")) / str(abs(hash(sys.argv[1] if len(sys.argv)>1 else "")))
t0 = time.time(); cpu0 = time.process_time()
m.train(TrainContext(dataset_dir=train_dir, train_rows=rows, eval_rows=[], params=params, output_dir=out, seed=int(os.environ.get("SEED", 0)), report=R()))
tt = time.time() - t0; cpu = time.process_time() - cpu0
t1 = time.time()
met = m.evaluate(EvalContext(model_dir=out, dataset_dir=held, rows=hrows, params={}, report=R()))
print("RESULT", json.dumps(params), f"train_s={tt:.1f} cpu_s={cpu:.1f} eval_s={time.time()-t1:.1f}", " ".join(f"{k}={v:.3f}" for k, v in met.items()), flush=True)
