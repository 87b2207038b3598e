./asr.sh --train_set train --valid_set dev --test_sets test --token_type char --asr_config conf/train_small.yaml --nj 2 --stage 6
