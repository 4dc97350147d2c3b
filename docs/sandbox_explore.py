"""Run the real claude against the sim with N Bash commands; print each tool_result."""
import json, os, subprocess, sys, uuid, tempfile
from pathlib import Path
sys.path.insert(0, "/work/wt/sandbox")
from autonoma.sim import SimServer, loads_scenario

CLAUDE = "/work/wt/sandbox/.tools/claude/node_modules/.bin/claude"

def run(cwd, cmds, settings, tools=("Bash",), extra_args=(), env_extra=None, path=None, tool_calls=None):
    steps = ""
    calls = tool_calls or [("Bash", {"command": c, "description": "x"}) for c in cmds]
    for name, inp in calls:
        steps += '[[rule.step]]\n[[rule.step.tool]]\nname = %s\ninput = %s\n' % (json.dumps(name), toml_inline(inp))
    scen = 'usage = { input_tokens = 10, output_tokens = 2 }\n[[rule]]\nname="x"\nprompt_contains="go"\n' + steps + '[[rule.step]]\ntext="Done."\n'
    home = Path(tempfile.mkdtemp(prefix="home", dir="/tmp/sbx"))
    with SimServer(loads_scenario(scen)) as sim:
        env = {"PATH": path or os.environ["PATH"], "HOME": str(home), "CLAUDE_CONFIG_DIR": str(home/".claude"),
               "ANTHROPIC_BASE_URL": sim.url, "ANTHROPIC_API_KEY": "dummy", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", **(env_extra or {})}
        argv = [CLAUDE, "-p", "go", "--output-format", "stream-json", "--verbose", "--setting-sources", "project,local", "--strict-mcp-config"]
        if settings is not None:
            s = json.dumps(settings).replace("PORT", sim.url.rsplit(":",1)[1].strip("/"))
            argv += ["--settings", s]
        argv += list(extra_args) + ["--allowedTools", *tools]
        p = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    print("rc", p.returncode, "stderr:", p.stderr[-800:])
    for line in p.stdout.splitlines():
        if not line.startswith("{"): continue
        d = json.loads(line)
        if d.get("type") == "assistant":
            for b in d["message"]["content"]:
                if b.get("type") == "tool_use": print("  >>", b["name"], json.dumps(b["input"])[:200])
        if d.get("type") == "user":
            for b in d["message"]["content"]:
                if isinstance(b, dict) and b.get("type") == "tool_result":
                    print("  <<", ("ERR " if b.get("is_error") else "") + str(b.get("content"))[:400].replace("\n", " | "))
        if d.get("type") == "result":
            print("  result:", d.get("subtype"), d.get("is_error"), str(d.get("result"))[:300], d.get("permission_denials"))
    return p

def toml_inline(d):
    return "{ " + ", ".join("%s = %s" % (k, json.dumps(v)) for k, v in d.items()) + " }"
