import sys, json, collections
data = sys.stdin.read().split()
counts = collections.Counter(data)
for word, n in sorted(counts.items()):
    print(f"{word}\t{n}")
print(json.dumps({"total": len(data)}))
