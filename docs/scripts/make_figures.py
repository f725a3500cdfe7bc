FIGURES = []
def main(out_dir): pass
