//! Which pages of the data area changed since the last checkpoint: one bit per 4 KiB page.
//! A checkpoint writes exactly these pages to the file, so its cost follows the pages
//! changed, not the image's size.

/// The page size the data area is tracked (and written) in.
pub(crate) const PAGE: usize = 4096;

/// A set of page numbers, as a bitmap.
#[derive(Debug, Default)]
pub(crate) struct DirtyPages {
    words: Vec<u64>,
    count: usize,
}

impl DirtyPages {
    /// Marks every page that overlaps the byte range `[start, end)` of the data area.
    pub(crate) fn mark(&mut self, start: usize, end: usize) {
        if start >= end {
            return;
        }
        let (first, last) = (start / PAGE, (end - 1) / PAGE);
        // The common case, a change within one page already marked: one load.
        if first == last
            && self
                .words
                .get(first / 64)
                .is_some_and(|w| w & (1 << (first % 64)) != 0)
        {
            return;
        }
        if last / 64 >= self.words.len() {
            self.words.resize(last / 64 + 1, 0);
        }
        for page in first..=last {
            let (word, bit) = (page / 64, 1u64 << (page % 64));
            if self.words[word] & bit == 0 {
                self.words[word] |= bit;
                self.count += 1;
            }
        }
    }

    /// How many pages are marked.
    pub(crate) fn count(&self) -> usize {
        self.count
    }

    /// The runs of consecutive marked pages, as page ranges `(first, end)`, in order.
    pub(crate) fn runs(&self) -> Vec<(usize, usize)> {
        let mut runs: Vec<(usize, usize)> = Vec::new();
        for (w, &word) in self.words.iter().enumerate() {
            let mut bits = word;
            while bits != 0 {
                let page = w * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                match runs.last_mut() {
                    Some((_, end)) if *end == page => *end += 1,
                    _ => runs.push((page, page + 1)),
                }
            }
        }
        runs
    }

    /// Forgets every mark.
    pub(crate) fn clear(&mut self) {
        self.words.iter_mut().for_each(|w| *w = 0);
        self.count = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_cover_every_touched_page_and_merge_into_runs() {
        let mut d = DirtyPages::default();
        d.mark(10, 11); // page 0
        d.mark(PAGE - 1, PAGE + 1); // pages 0 and 1
        d.mark(5 * PAGE, 5 * PAGE); // empty range: nothing
        d.mark(64 * PAGE + 3, 66 * PAGE); // pages 64 and 65
        d.mark(63 * PAGE, 63 * PAGE + 1); // page 63, joining 64-65 across a word
        d.mark(100, 200); // page 0 again: counted once
        assert_eq!(d.runs(), vec![(0, 2), (63, 66)]);
        assert_eq!(d.count(), 5);
        d.clear();
        assert_eq!((d.runs(), d.count()), (vec![], 0));
    }
}
