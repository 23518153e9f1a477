"""Make docs/audit-serve.png: the review page of `icdreason audit serve`, in headless Chromium.

    python docs/make_screenshot.py [--kb PATH] [--out docs/audit-serve.png]

Needs Debian's `chromium` and `chromium-driver` packages and selenium (the test extra). Writes two synthetic
predictions, serves them, accepts the first case by keyboard, types `E11.6` into the correction of the second (the
live validation lists billable codes below that header) and saves the window as a 128-colour PNG.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RECORDS = [
    {"id": "adm-1041", "note": "71 year old man with crushing retrosternal chest pain for two hours, radiating to the "
     "jaw. Diaphoretic on arrival. Troponin I 4.2 ng/mL, rising. ECG shows ST depression in V4-V6 without ST "
     "elevation. Lives alone, walks his dog daily.",
     "trace": "Retrosternal chest pain radiating to the jaw with a rising troponin. The ECG shows ST depression in "
     "V4-V6 without ST elevation. This is a non-ST elevation myocardial infarction.",
     "code": "I21.4", "confidence": {"code": 0.75, "category": 1.0, "chapter": 1.0},
     "top_k": [{"code": "I21.4", "support": 0.75}, {"code": "I24.9", "support": 0.25}]},
    {"id": "adm-1042", "note": "58 year old woman, known type 2 diabetes on metformin, admitted with three days of "
     "polyuria and thirst. Fasting glucose 320 mg/dL. HbA1c 11.2 percent. No ketones in blood or urine. Foot "
     "examination normal.",
     "trace": "Known type 2 diabetes with polyuria, thirst and a fasting glucose of 320 mg/dL. HbA1c 11.2 percent "
     "and no ketones, so no ketoacidosis. Poorly controlled type 2 diabetes without complications.",
     "code": "E11.9", "confidence": {"code": 0.5, "category": 1.0, "chapter": 1.0},
     "top_k": [{"code": "E11.9", "support": 0.5}, {"code": "E11.65", "support": 0.375},
               {"code": "R73.9", "support": 0.125}]},
]
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
         "--window-size=1200,900", "--hide-scrollbars")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kb", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("audit-serve.png"))
    args = parser.parse_args()

    from PIL import Image
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with tempfile.TemporaryDirectory() as tmp:
        preds = Path(tmp) / "preds.jsonl"
        preds.write_text("".join(json.dumps({**r, "run_id": "demo", "engine": "vllm"}) + "\n" for r in RECORDS))
        env = dict(os.environ, **({"ICDREASON_KB": str(args.kb)} if args.kb else {}))
        icdreason = str(Path(sys.executable).with_name("icdreason"))
        server = subprocess.Popen([icdreason, "audit", "serve", str(preds), "--reviewer", "jdoe", "--port", "0",
                                   "--db", str(Path(tmp) / "audit.duckdb")], stdout=subprocess.PIPE, text=True,
                                  env=env)
        url = None
        while url is None:
            line = server.stdout.readline()
            if not line:
                raise SystemExit("icdreason audit serve did not start")
            found = re.match(r"^jdoe: (\S+)$", line.strip())
            url = found[1] if found else None
        options = webdriver.ChromeOptions()
        options.binary_location = "/usr/bin/chromium"
        for flag in (*FLAGS, f"--user-data-dir={Path(tmp) / 'profile'}"):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=options)
        try:
            wait = WebDriverWait(driver, 20)
            driver.get(url)
            wait.until(lambda d: "Case 1/2" in d.title)
            time.sleep(3)  # a few seconds on the case, so the progress shows a time per case
            ActionChains(driver).send_keys("a").perform()
            wait.until(lambda d: "Case 2/2" in d.title)
            ActionChains(driver).send_keys("c", "E11.6").perform()
            wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#correct-code-list li")) >= 3)
            time.sleep(1.2)  # let the case timer tick once
            raw = Path(tmp) / "raw.png"
            driver.save_screenshot(str(raw))
        finally:
            driver.quit()
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
        image = Image.open(raw).convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT)
        image.save(args.out, optimize=True)
    print(f"{args.out}: {args.out.stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
