"""Real-size pipelines end to end, offline: for each family, a pipeline with the real architecture and random
weights is saved as a diffusers folder and as an A1111 / CivitAI single file, both are registered with
`genstudio models add` (no --config, no network), and each makes one 512x512 image through the API.
The slow tests do SD 1.5 and SD 2.1 in CI; SDXL (3.5 billion parameters, about 7 GB in bfloat16) runs here.

    .venv/bin/python bench/run_real_shapes.py [--families sdxl] [--out bench/results]

Records per family and format: load + generate seconds, the family /api/models reports, the output size.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
os.environ.setdefault("GENSTUDIO_ALLOWED_HOSTS", "testserver")  # the in-process client's host name

from ldm_layout import SINGLE_FILE_WRITERS, random_pipeline  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--families", default="sdxl")
    ap.add_argument("--out", type=Path, default=Path("bench/results"))
    args = ap.parse_args()

    from fastapi.testclient import TestClient
    from safetensors.torch import save_file

    from genstudio.api.app import create_app
    from genstudio.config import Settings
    from genstudio.image.single_file import config_folder

    results: dict = {"torch": torch.__version__, "families": {}}
    for family in args.families.split(","):
        root = Path(tempfile.mkdtemp(prefix="genstudio-bench-shapes-"))
        cfg = config_folder(family, root / "configs")
        t0 = time.perf_counter()
        pipe = random_pipeline(family, cfg, dtype=torch.bfloat16)
        pipe.save_pretrained(root / "folder", safe_serialization=True)
        single = root / f"{family}.safetensors"
        save_file(SINGLE_FILE_WRITERS[family](pipe), str(single))
        del pipe
        gc.collect()
        row: dict = {"build_and_save_s": time.perf_counter() - t0, "single_file_bytes": single.stat().st_size}
        data = root / "data"
        env = {**os.environ, "GENSTUDIO_DATA_DIR": str(data), "HF_HUB_OFFLINE": "1"}
        for source, name in ((single, "file"), (root / "folder", "folder")):
            done = subprocess.run([sys.executable, "-m", "genstudio.cli", "models", "add", str(source), "--name", name],
                                  env=env, capture_output=True, text=True, timeout=900)
            row[f"add_{name}"] = done.stdout.strip() or done.stderr.strip()
        with TestClient(create_app(Settings(data_dir=data, executor="thread"))) as client:
            row["families"] = {m["id"]: m["family"] for m in client.get("/api/models?kind=image").json()}
            for name in ("file", "folder"):
                t0 = time.perf_counter()
                job_id = client.post("/api/images", json={"prompt": "a lighthouse", "model": name, "steps": 1,
                                                          "guidance": 0, "width": 512, "height": 512}).json()["job_id"]
                while (job := client.get(f"/api/jobs/{job_id}").json())["status"] not in ("succeeded", "failed"):
                    time.sleep(0.5)
                took = time.perf_counter() - t0
                entry = {"status": job["status"], "error": job["error"], "load_and_generate_s": took}
                if job["status"] == "succeeded":
                    meta = client.get(f"/api/assets/{job['assets'][0]}/meta").json()
                    entry["size"] = [meta["params"]["width"], meta["params"]["height"]]
                row[name] = entry
                print(family, name, entry, flush=True)
        results["families"][family] = row
        subprocess.run(["rm", "-rf", str(root)], check=False)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "real_shapes.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
