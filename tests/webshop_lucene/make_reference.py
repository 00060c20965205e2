"""Write search_lucene.json (Lucene's tokens for every indexed document and its top-50 hits for
a set of queries) for tsr's WebShop search conformance test.

usage: python3 make_reference.py WEBSHOP_DIR OUT_DIR
WEBSHOP_DIR holds index_contents_1k.jsonl, products_1k.json and reward_*.json; the output goes
to OUT_DIR/search_lucene.json (put it next to the other reference files to have it tested).
"""
import base64, glob, json, os, subprocess, sys, tempfile

data, out_dir = sys.argv[1], sys.argv[2]
here = os.path.dirname(os.path.abspath(__file__))
jars = [glob.glob(f"/usr/share/java/lucene-{name}-8*.jar")[0] for name in ("core", "analyzers-common")]
b64 = lambda s: base64.b64encode(s.encode()).decode()
docs = [json.loads(line) for line in open(os.path.join(data, "index_contents_1k.jsonl"))]
products = json.load(open(os.path.join(data, "products_1k.json")))
instructions = set()
for path in sorted(glob.glob(os.path.join(data, "reward_*.json"))):
    instructions |= {c["goal"]["instruction_text"].lower() for c in json.load(open(path))["cases"]}
queries = sorted(instructions)[:300] + sorted({p["query"] for p in products})[:200]
queries += [p["Title"].lower() for p in products[:200]]
with tempfile.TemporaryDirectory() as tmp:
    with open(f"{tmp}/docs.tsv", "w") as f:
        f.writelines(f"{d['id']}\t{b64(d['contents'])}\n" for d in docs)
    with open(f"{tmp}/queries.txt", "w") as f:
        f.writelines(b64(q) + "\n" for q in queries)
    cp = ":".join(jars)
    subprocess.run(["javac", "-cp", cp, "-d", tmp, os.path.join(here, "Ref.java")], check=True)
    subprocess.run(["java", "-cp", f"{cp}:{tmp}", "Ref", f"{tmp}/docs.tsv", f"{tmp}/queries.txt",
                    f"{tmp}/tokens.txt", f"{tmp}/hits.txt"], check=True)
    tokens = open(f"{tmp}/tokens.txt").read().split("\n")
    hits = open(f"{tmp}/hits.txt").read().split("\n")
reference = {
    "meta": {"lucene": os.path.basename(jars[0]), "similarity": "BM25(k1=0.9, b=0.4)",
             "documents": "index_contents_1k.jsonl", "top": 50},
    "documents": [{"id": d["id"], "tokens": tokens[i].split()} for i, d in enumerate(docs)],
    "cases": [{"query": q, "top50": hits[i].split()} for i, q in enumerate(queries)],
}
json.dump(reference, open(os.path.join(out_dir, "search_lucene.json"), "w"), ensure_ascii=False)
print(f"{len(docs)} documents, {len(queries)} queries -> {out_dir}/search_lucene.json")
