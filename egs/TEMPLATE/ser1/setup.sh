#!/usr/bin/env bash
# Create a new SER recipe directory from this template:
#   egs/TEMPLATE/ser1/setup.sh egs/<corpus>/ser1
# Symlinks: ser.sh (the shared stages) and utils/. Copies: conf/, db.sh, cmd.sh, path.sh.
# Writes a run.sh and a local/data.sh skeleton to fill in for the corpus.
set -euo pipefail
if [ $# -ne 1 ]; then
    echo "Usage: $0 egs/<corpus>/<task>" >&2
    exit 1
fi
dir=$1
if [ -e "${dir}/run.sh" ]; then
    echo "$0: ${dir}/run.sh exists; not overwriting a recipe" >&2
    exit 1
fi
template=$(cd "$(dirname "$0")" && pwd)
mkdir -p "${dir}/local"
dir_abs=$(cd "${dir}" && pwd)
depth=$(realpath --relative-to="${dir_abs}" "${template}")
root_rel=$(realpath --relative-to="${dir_abs}" "${template}/../../..")
ln -sfn "${depth}/ser.sh" "${dir}/ser.sh"
ln -sfn "${root_rel}/utils" "${dir}/utils"
cp -r "${template}/conf" "${dir}/"
cp "${template}/db.sh" "${template}/cmd.sh" "${template}/path.sh" "${dir}/"
cat > "${dir}/run.sh" <<'RUN'
#!/usr/bin/env bash
# Corpus-specific options; every other option passes through to ser.sh.
set -euo pipefail
./ser.sh --train_config conf/train.yaml "$@"
RUN
cat > "${dir}/local/data.sh" <<'DATA'
#!/usr/bin/env bash
# Turn the corpus download into data/all: wav.scp utt2spk spk2utt utt2emo (and text,
# utt2gender, ... where the corpus has them) plus the label list data/all/emotions.txt.
set -euo pipefail
. ./db.sh
echo "$0: fill in the corpus-specific preparation" >&2
exit 1
DATA
chmod +x "${dir}/run.sh" "${dir}/local/data.sh"
echo "$0: created ${dir}; now write ${dir}/local/data.sh"
