#!/usr/bin/env python3
"""The web page of `paradiff serve` in a real browser: headless Chromium, driven through
chromedriver's W3C WebDriver API (plain HTTP, Python's standard library only), types a prompt,
sets the steps and seed, clicks Generate, follows the progress bar, and checks that the image
rendered (decoded by the browser, the size asked for) and that its pixels are the PNG the API
returns for the same request, byte for byte.

    browser_test.py PARADIFF_BINARY MODEL_FOLDER

Exits 77 (skipped) when chromium or chromedriver is not installed (Debian: chromium,
chromium-driver).
"""

import base64
import json
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request

SKIP = 77
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # the W3C WebDriver element key


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None, timeout=60):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read() or b"null")


class Browser:
    """One WebDriver session of headless Chromium."""

    def __init__(self, driver_url, chromium):
        self.url = driver_url
        options = {"binary": chromium,
                   "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                            "--window-size=1200,1000"]}
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": options}}}
        self.session = http("POST", f"{driver_url}/session", caps)["value"]["sessionId"]

    def call(self, method, path, body=None):
        return http(method, f"{self.url}/session/{self.session}{path}", body)["value"]

    def open(self, url):
        self.call("POST", "/url", {"url": url})

    def element(self, css):
        return self.call("POST", "/element", {"using": "css selector", "value": css})[ELEMENT]

    def type_into(self, css, text):
        element = self.element(css)
        self.call("POST", f"/element/{element}/clear", {})
        self.call("POST", f"/element/{element}/value", {"text": text})

    def click(self, css):
        self.call("POST", f"/element/{self.element(css)}/click", {})

    def script(self, source, *args):
        return self.call("POST", "/execute/sync", {"script": source, "args": list(args)})

    def close(self):
        try:
            self.call("DELETE", "")
        except OSError:
            pass


def wait_for_line(process, pattern, seconds):
    deadline = time.monotonic() + seconds
    lines = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            if process.poll() is not None:
                break
            continue
        lines.append(line)
        match = re.search(pattern, line)
        if match:
            return match
    raise SystemExit(f"no line matching {pattern!r} within {seconds} s:\n{''.join(lines)}")


def main():
    binary, model = sys.argv[1:3]
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        print("SKIPPED: needs chromium and chromedriver (Debian: apt-get install chromium chromium-driver)")
        return SKIP
    processes = []
    browser = None
    try:
        server = subprocess.Popen([binary, "serve", "--model", model, "--port", "0", "--max-steps", "8"],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        processes.append(server)
        base = wait_for_line(server, r"listening on (http://[0-9.:]+)/", 60).group(1)
        log = []
        threading.Thread(target=lambda: log.extend(server.stdout), daemon=True).start()
        port = free_port()
        chromedriver = subprocess.Popen([driver, f"--port={port}"], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        processes.append(chromedriver)
        driver_url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if http("GET", f"{driver_url}/status", timeout=2)["value"]["ready"]:
                    break
            except OSError:
                time.sleep(0.1)
        browser = Browser(driver_url, chromium)
        browser.open(base + "/")

        prompt, size, steps, seed = "a large red circle at the top left", "64x48", 3, 5
        browser.type_into("#prompt", prompt)
        browser.type_into("#size", size)
        browser.type_into("#steps", str(steps))
        browser.type_into("#seed", str(seed))
        browser.click("#generate")

        # Follow the page until an image is in the gallery, noting what the progress bar showed.
        seen = set()
        deadline = time.monotonic() + 120
        state = None
        while time.monotonic() < deadline:
            state = browser.script(
                "const img = document.querySelector('#gallery img');"
                "return {value: document.getElementById('progress').value,"
                " max: document.getElementById('progress').max,"
                " status: document.getElementById('status').textContent,"
                " model: document.getElementById('model').textContent,"
                " done: !!img && img.complete && img.naturalWidth > 0,"
                " width: img ? img.naturalWidth : 0, height: img ? img.naturalHeight : 0,"
                " src: img ? img.src : '', alt: img ? img.alt : ''};")
            seen.add((state["value"], state["max"]))
            if state["status"].startswith("error"):
                raise SystemExit(f"the page reports {state['status']!r}")
            if state["done"]:
                break
            time.sleep(0.05)
        else:
            raise SystemExit(f"no image rendered within 120 s; last state {state}")

        problems = []
        if (state["width"], state["height"]) != (64, 48):
            problems.append(f"rendered {state['width']}x{state['height']}, asked 64x48")
        if state["alt"] != prompt:
            problems.append(f"image alt {state['alt']!r}, typed {prompt!r}")
        if state["status"] != "done" or (state["value"], state["max"]) != (steps, steps):
            problems.append(f"progress ended at {state['value']}/{state['max']} with status {state['status']!r}")
        if "FluxPipeline" not in state["model"]:
            problems.append(f"the model line reads {state['model']!r}")
        # The page's image is the API's image for the same request, byte for byte.
        shown = base64.b64decode(state["src"].split(",", 1)[1])
        api = http("POST", base + "/v1/images/generations",
                   {"prompt": prompt, "size": size, "num_inference_steps": steps, "seed": seed}, timeout=120)
        if shown != base64.b64decode(api["data"][0]["b64_json"]):
            problems.append("the page's PNG differs from the API's PNG for the same request")
        print(f"browser: image {state['width']}x{state['height']} rendered; progress values seen "
              f"{sorted(v for v, _ in seen)}; status {state['status']!r}; {len(shown)} PNG bytes, "
              "equal to the API's")
        if problems:
            raise SystemExit("browser test failed: " + "; ".join(problems) + "\nserver log:\n" + "".join(log))
        return 0
    finally:
        if browser:
            browser.close()
        for p in processes:
            p.terminate()
        for p in processes:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    sys.exit(main())
