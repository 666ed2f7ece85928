# The two commands of the README, and the generators. Each target is one line of shell so the
# scripts stay the single source of how things are done.
.PHONY: up test gen

up: ## run the engine and the editor on the embedded store (builds what it needs)
	scripts/toolchain.sh
	scripts/ui.sh
	cargo run --release -j2 --bin weir -- up

test: ## the whole suite, as CI runs it
	scripts/test

gen: ## regenerate committed artefacts (CRDs, the node reference, the chart's generated files)
	cargo run -j2 --bin weir -- crds --out crds && cargo run -j2 --bin weir -- reference --out docs/nodes.md && cargo run -j2 --bin weir -- chart --out charts/weir
