#!/usr/bin/env bash
# Make a new recipe directory from a template; each template's setup.sh calls this with what is its own:
#   make_recipe.sh <template-dir> <stage-script> "<run.sh options>" "<what local/data.sh makes>" <new-recipe-dir>
# The new recipe gets links to the template's stage script, to the project's utils/ (which holds
# stage_lib.sh, the steps the stage scripts share), copies of the template's conf/, cmd.sh and path.sh
# (links resolved: the copies are the recipe's to edit), a db.sh that reads the one shared list of corpora
# (egs/TEMPLATE/common/db.sh) and takes the new corpus's line, and skeletons of run.sh and local/data.sh.
set -euo pipefail
if [ $# -ne 5 ]; then
    echo "Usage: ${1:-egs/TEMPLATE/<template>}/setup.sh egs/<corpus>/<task>" >&2
    exit 1
fi
template=$(cd "$1" && pwd)
stage_script=$2
run_opts=$3
data_doc=$4
dir=$5
[ -f "${template}/${stage_script}" ] || { echo "$0: ${template}/${stage_script}: no such stage script" >&2; exit 1; }
if [ -e "${dir}/run.sh" ]; then
    echo "${template}/setup.sh: ${dir}/run.sh exists; not overwriting a recipe" >&2
    exit 1
fi
mkdir -p "${dir}/local"
dir_abs=$(cd "${dir}" && pwd)
ln -sfn "$(realpath --relative-to="${dir_abs}" "${template}")/${stage_script}" "${dir}/${stage_script}"
ln -sfn "$(realpath --relative-to="${dir_abs}" "${template}/../../..")/utils" "${dir}/utils"
cp -rL "${template}/conf" "${dir}/"
cp -L "${template}/cmd.sh" "${template}/path.sh" "${dir}/"
cat > "${dir}/db.sh" <<DB
# The corpora and models every recipe knows (the shared list), then this recipe's own lines.
# shellcheck source=/dev/null
. "\$(dirname "\${BASH_SOURCE[0]}")/$(realpath -s --relative-to="${dir_abs}" "${template}/../common")/db.sh"
# shellcheck disable=SC2034  # read by local/data.sh and run.sh
DB
cat > "${dir}/run.sh" <<RUN
#!/usr/bin/env bash
# Corpus-specific options; every other option passes through to ${stage_script}.
set -euo pipefail
[ -f ./db.sh ] || { echo "\$0: run it from its recipe directory: cd \$(dirname "\$0") && ./\$(basename "\$0")" >&2; exit 1; }
. ./db.sh
./${stage_script} ${run_opts} "\$@"
RUN
cat > "${dir}/local/data.sh" <<DATA
#!/usr/bin/env bash
# Turn the corpus download into ${data_doc}.
set -euo pipefail
. ./db.sh
echo "\$0: fill in the corpus-specific preparation" >&2
exit 1
DATA
chmod +x "${dir}/run.sh" "${dir}/local/data.sh"
echo "${template}/setup.sh: created ${dir}; now write ${dir}/local/data.sh"
