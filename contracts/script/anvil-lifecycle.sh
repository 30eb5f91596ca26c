#!/usr/bin/env bash
# Smoke test on a real node: starts anvil on a random loopback port, deploys with
# script/Deploy.s.sol, then runs two jobs through runJob -> agreeDeal -> submitResult -> settle with
# cast. The provider's EIP-712 signatures are made by `cast wallet sign --data` from the type
# strings in docs/protocol.md (an implementation independent of the contracts), and the request
# hash is recomputed with `cast abi-encode`. Prints the gas each transaction used, then stops anvil.
#
#   contracts/script/anvil-lifecycle.sh        (from anywhere; needs jq and xxd)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
bin=node_modules/.bin
for tool in jq xxd; do
  command -v $tool >/dev/null || { echo "anvil-lifecycle: $tool is required" >&2; exit 1; }
done

port=$((20000 + RANDOM % 20000))
rpc=http://127.0.0.1:$port
work=$(mktemp -d "${TMPDIR:-/tmp}/lilypad-anvil.XXXXXX")
"$bin/anvil" --host 127.0.0.1 --port "$port" --silent >"$work/anvil.log" 2>&1 &
anvil_pid=$!
trap 'kill "$anvil_pid" 2>/dev/null || true; rm -rf "$work" "$here/deployments/anvil-lifecycle-$port.json"' EXIT
for _ in $(seq 50); do "$bin/cast" block-number --rpc-url "$rpc" >/dev/null 2>&1 && break; sleep 0.2; done

# anvil's well-known dev keys: 0 deploys, 1 is the client, 2 the provider, 3 the relayer
deployer_key=0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80
client_key=0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d
provider_key=0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a
relayer_key=0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6
client=$("$bin/cast" wallet address --private-key $client_key)
provider=$("$bin/cast" wallet address --private-key $provider_key)

out="$here/deployments/anvil-lifecycle-$port.json" # forge may only write under deployments/
DEPLOYER_PRIVATE_KEY=$deployer_key FUND_ADDRESSES="$client,$provider" DEPLOYMENT_FILE="$out" \
  "$bin/forge" script script/Deploy.s.sol --rpc-url "$rpc" --broadcast >"$work/deploy.log" 2>&1 ||
  { cat "$work/deploy.log"; exit 1; }
lilypad=$(jq -r .lilypad "$out")
token=$(jq -r .token "$out")
chain_id=$(jq -r .chainId "$out")
echo "deployed: lilypad $lilypad token $token chain $chain_id (deploymentBlock $(jq -r .deploymentBlock "$out"))"

send() { # key, then cast send arguments; prints gasUsed
  local key=$1; shift
  "$bin/cast" send --json --private-key "$key" --rpc-url "$rpc" "$@" | jq -r '.gasUsed' | xargs printf '%d\n'
}

request_type='(string,string,(string,string)[],uint256,uint32,uint32,uint32,uint32,uint32,uint32)'
request='("cowsay","1.0.0",[("message","hello, world")],10000000000000000000,600,900,100000,1024,20000,60)'
price=8000000000000000000

send $provider_key "$token" 'approve(address,uint256)' "$lilypad" 1000000000000000000000 >/dev/null
send $provider_key "$lilypad" 'registerProvider(string)' 'https://provider.example/' >/dev/null
send $provider_key "$lilypad" 'depositCollateral(uint256)' 1000000000000000000000 >/dev/null
send $client_key "$token" 'approve(address,uint256)' "$lilypad" 1000000000000000000000 >/dev/null
getjob='getJob(uint256)((address,uint8,uint40,uint32,uint16,bytes32,uint96,uint32,uint32,uint32,uint32,uint32,address,uint96,bytes32))'
domain='{"name":"Lilypad","version":"1","chainId":'$chain_id',"verifyingContract":"'$lilypad'"}'
domain_type='[{"name":"name","type":"string"},{"name":"version","type":"string"},{"name":"chainId","type":"uint256"},{"name":"verifyingContract","type":"address"}]'
cid_hex=0x$(printf 'bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi' | xxd -p | tr -d '\n')
output_hex=0x$(printf ' ______________\n< hello, world >\n --------------\n' | xxd -p | tr -d '\n')
output_hash=$("$bin/cast" keccak "$output_hex")
expected_hash=$("$bin/cast" keccak "$("$bin/cast" abi-encode "f($request_type)" "$request")")

lifecycle() { # job id; sets gas_run gas_agree gas_submit gas_settle
  local job_id=$1
  gas_run=$(send $client_key "$lilypad" "runJob($request_type)" "$request")
  local request_hash
  request_hash=$("$bin/cast" call "$lilypad" "$getjob" "$job_id" --rpc-url "$rpc" | grep -oE '0x[0-9a-f]{64}' | head -1)
  [[ $request_hash == "$expected_hash" ]] ||
    { echo "requestHash $request_hash != keccak(abi.encode(request)) $expected_hash" >&2; exit 1; }

  local expiry deal_json deal_sig result_json result_sig
  expiry=$(($("$bin/cast" block latest --field timestamp --rpc-url "$rpc") + 300))
  deal_json='{"types":{"EIP712Domain":'$domain_type',"Deal":[{"name":"jobId","type":"uint256"},{"name":"requestHash","type":"bytes32"},{"name":"provider","type":"address"},{"name":"price","type":"uint256"},{"name":"timeoutCollateral","type":"uint256"},{"name":"resultsCollateral","type":"uint256"},{"name":"expiry","type":"uint256"}]},"primaryType":"Deal","domain":'$domain',"message":{"jobId":'$job_id',"requestHash":"'$request_hash'","provider":"'$provider'","price":"'$price'","timeoutCollateral":"'$price'","resultsCollateral":"16000000000000000000","expiry":'$expiry'}}'
  deal_sig=$("$bin/cast" wallet sign --data --private-key $provider_key "$deal_json")
  gas_agree=$(send $relayer_key "$lilypad" 'agreeDeal((uint256,bytes32,address,uint256,uint256,uint256,uint256),bytes)' \
    "($job_id,$request_hash,$provider,$price,$price,16000000000000000000,$expiry)" "$deal_sig")

  result_json='{"types":{"EIP712Domain":'$domain_type',"Result":[{"name":"jobId","type":"uint256"},{"name":"status","type":"uint8"},{"name":"resultCid","type":"bytes"},{"name":"outputHash","type":"bytes32"},{"name":"exitCode","type":"int32"},{"name":"error","type":"string"}]},"primaryType":"Result","domain":'$domain',"message":{"jobId":'$job_id',"status":1,"resultCid":"'$cid_hex'","outputHash":"'$output_hash'","exitCode":0,"error":""}}'
  result_sig=$("$bin/cast" wallet sign --data --private-key $provider_key "$result_json")
  gas_submit=$(send $relayer_key "$lilypad" 'submitResult((uint256,uint8,bytes,int32,string),bytes,bytes)' \
    "($job_id,1,$cid_hex,0,\"\")" "$output_hex" "$result_sig")

  "$bin/cast" rpc evm_increaseTime 61 --rpc-url "$rpc" >/dev/null
  "$bin/cast" rpc evm_mine --rpc-url "$rpc" >/dev/null
  gas_settle=$(send $relayer_key "$lilypad" 'settle(uint256)' "$job_id")
  local status
  status=$("$bin/cast" call "$lilypad" "$getjob" "$job_id" --rpc-url "$rpc" | tr -d '()' | cut -d, -f2 | tr -d ' ')
  [[ $status == 5 ]] || { echo "job $job_id ended in status $status, expected 5 (Settled)" >&2; exit 1; }
}

lifecycle 1
echo "job 1 (fresh deployment): runJob $gas_run agreeDeal $gas_agree submitResult $gas_submit settle $gas_settle"
lifecycle 2
owed=$("$bin/cast" call "$lilypad" 'balanceOf(address)(uint256)' "$provider" --rpc-url "$rpc" | cut -d' ' -f1)
[[ $owed == 15840000000000000000 ]] || { echo "provider credited $owed, expected 2 x (8 - 1%) = 15.84e18" >&2; exit 1; }
echo "both jobs settled; provider credited $owed (2 x price minus the 1% fee)"
echo "job 2, steady state (receipt gasUsed: 21000 base and calldata included):"
echo "  runJob       $gas_run   (EOA client, callbackGasLimit 100000, one input)"
echo "  agreeDeal    $gas_agree"
echo "  submitResult $gas_submit   (EOA client: the callback CALL returns at once)"
echo "  settle       $gas_settle"
